"""The spill file: batches the store could not take, one JSON line each, replayed in order.

With `on_failure = "spill"` the writer appends here while the database refuses writes, and
replays the lines (each in one transaction, its batch id recorded in `spilled_batches`) once
it takes them again; the file is deleted when everything in it is in the database. A line
is appended with one write() and no fsync: like a commit under `synchronous = NORMAL`, it
survives a kill -9 of the daemon, not a power cut. A line a crash cut short is dropped when
the file is next opened.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

_SCAN = 64 * 1024  # how far back to look for the last complete line at a time


class SpillFull(Exception):
    """Appending would take the file past its size limit."""


def default_spill_path(database: Path | str, instance: str = "") -> Path:
    """Next to a SQLite file, like its -wal and -shm files. A PostgreSQL store has no folder
    of its own: the instance's state folder ($XDG_STATE_HOME/omen, ~/.local/state/omen)."""
    if isinstance(database, Path):
        return database.with_name(database.name + "-spill.jsonl")
    state = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    name = re.sub(r"[^\w.-]", "_", instance) or "omen"
    return Path(state).expanduser() / "omen" / f"{name}-spill.jsonl"


class SpillFile:
    def __init__(self, path: Path, max_size: int) -> None:
        self.path = path
        self.max_size = max_size
        self._size = 0  # bytes in the file
        self._offset = 0  # bytes of it already replayed
        self._appender: BinaryIO | None = None
        self._reader: BinaryIO | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def pending(self) -> bool:
        """Whether lines wait to be replayed."""
        return self._offset < self._size

    def open(self) -> None:
        """Pick up a file a previous run left (its lines are replayed from the start)."""
        self.close()
        self._offset = 0
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self._size = 0
            return
        self._size = _complete_length(self.path, size)
        if self._size != size:
            os.truncate(self.path, self._size)

    def append(self, line: bytes) -> None:
        """Add one line (ending in a newline); raises SpillFull or OSError, leaving the file
        as it was."""
        if self._size + len(line) > self.max_size:
            raise SpillFull(f"the spill file has reached spill_max_size ({self.max_size} bytes)")
        if self._appender is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._appender = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
        view = memoryview(line)
        try:
            while view:
                written = self._appender.write(view)
                view = view[written or 0 :]
        except OSError:
            self._appender.truncate(self._size)  # no half line left behind
            raise
        self._size += len(line)

    def next_line(self) -> tuple[bytes, int] | None:
        """The next line to replay and the offset just past it; None when none is left."""
        if not self.pending:
            return None
        if self._reader is None:
            self._reader = open(self.path, "rb")  # noqa: SIM115 - kept open while replaying
        self._reader.seek(self._offset)
        line = self._reader.readline()
        if not line.endswith(b"\n"):
            return None
        return line, self._offset + len(line)

    def advance(self, offset: int) -> None:
        """Everything before `offset` is in the database."""
        self._offset = offset

    def finish(self) -> None:
        """Everything is replayed: delete the file."""
        self.close()
        self.path.unlink(missing_ok=True)
        self._size = self._offset = 0

    def close(self) -> None:
        for handle in (self._appender, self._reader):
            if handle is not None:
                handle.close()
        self._appender = self._reader = None


def _complete_length(path: Path, size: int) -> int:
    """Length of the file up to and including its last newline."""
    with path.open("rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - _SCAN)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
    return 0
