"""What the store writer keeps while the database refuses writes, and how it gets it back in.

When a commit fails because of the database itself (disk full, read-only or corrupt file,
I/O errors), the backlog says so in `failure` and `refusing` (plain attributes the request
path reads without I/O) and keeps the batch: with `on_failure="refuse"` in memory, up to
`max_held_bytes` (the daemon refuses new requests meanwhile); with `"spill"` in the spill
file (store.spill), up to its size limit, past which it refuses as "refuse" does. Every
`retry_interval` the writer tries again: the held batches first, else one spill-file line,
else a write that changes nothing. The first commit that works ends the failure; the spill
file is then replayed a slice at a time between new batches, each line in one transaction
that also records its id in `spilled_batches`, so a crash mid-replay replays none twice.
Records beyond both bounds are dropped and counted; at shutdown, held records go to the
spill file (whatever the mode) rather than be lost.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from omen_store.batch import Batch
from omen_store.dbapi import Connection
from omen_store.errors import in_words, is_store_fault
from omen_store.spill import SpillFile, SpillFull

if TYPE_CHECKING:
    from omen_store.writer import WriterStats

log = logging.getLogger("omen.store")

OnFailure = Literal["refuse", "spill"]
# Commit what the database takes of a batch (as the replay of a spill line when given its
# id); returns what is left of it because the store fails, None when nothing is.
Write = Callable[[Batch, str | None], Batch | None]

_REPLAY_SLICE_S = 0.05  # replay at most this long between two batches of new records
_monotonic = time.monotonic


class Backlog:
    def __init__(
        self,
        database: str,
        spill: SpillFile,
        stats: WriterStats,
        *,
        on_failure: OnFailure,
        retry_interval: float,
        max_held_bytes: int,
        spill_prefix: str = "",
    ) -> None:
        self.database = database  # for log lines: a URL without its password
        self.spill_prefix = spill_prefix  # spill ids start with it: whose replay it was
        self.spill = spill
        self.stats = stats
        self.on_failure = on_failure
        self.retry_interval = retry_interval
        self.max_held_bytes = max_held_bytes
        # Written by the writer thread only; read by anyone.
        self.failure: str | None = None  # why the store cannot write now
        self.refusing = False  # whether new requests should be refused
        self.held_count = 0  # records held in memory
        self._held_bytes = 0
        self._held: deque[tuple[Batch, float]] = deque()  # (batch, when its oldest was queued)
        self._spill_problem: str | None = None  # why the spill file takes no more lines
        self._retry_at = 0.0

    @property
    def oldest(self) -> float | None:
        """When the oldest record held in memory was queued."""
        return self._held[0][1] if self._held else None

    def due(self) -> bool:
        """Whether a failing store may be tried again now."""
        return _monotonic() >= self._retry_at

    def idle_wait(self) -> float | None:
        """How long the writer may wait for new records (None: as long as it takes)."""
        if self.failure is not None:
            return max(0.0, self._retry_at - _monotonic())
        return 0.0 if self.spill.pending else None

    # -- the state -----------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """A commit failed because of the store itself."""
        reason = in_words(exc)
        self.stats.failed_batches += 1
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()
        self._retry_at = _monotonic() + self.retry_interval
        first = self.failure is None
        self.failure = reason
        self.refusing = self.on_failure == "refuse" or self._spill_problem is not None
        if first:
            then = (
                "refusing new requests until it can"
                if self.refusing
                else f"spilling to {self.spill.path} until it can"
            )
            log.error("store: cannot write to %s: %s; %s", self.database, reason, then)

    def locked(self) -> None:
        """Another process has held the write lock for long: refuse until it lets go."""
        if self.failure is None:
            self.failure = "the database is locked by another process"
            self.refusing = True
            log.error("store: %s; refusing new requests until it is free", self.failure)

    def recovered(self) -> None:
        """A commit worked."""
        if self.failure is None:
            return
        log.warning(
            "store: writes work again (%d records held, %d bytes to replay)",
            self.held_count,
            self.spill.size,
        )
        self.failure = None
        self.refusing = False
        self._spill_problem = None

    # -- keeping -------------------------------------------------------------------------

    def hold(self, batch: Batch, queued: float) -> None:
        """Keep a batch the store could not take: in the spill file, else in memory."""
        if self.on_failure == "spill" and self._spill_problem is None and self._spill(batch):
            return
        weight = batch.weight()
        if self._held_bytes + weight > self.max_held_bytes:
            self.stats.dropped += len(batch)
            log.error(
                "store: %d records lost: the store cannot write and already holds %d (%d MiB)",
                len(batch),
                self.held_count,
                self._held_bytes >> 20,
            )
            return
        self._held.append((batch, queued))
        self.held_count += len(batch)
        self._held_bytes += weight

    def _pop(self) -> tuple[Batch, float]:
        batch, queued = self._held.popleft()
        self.held_count -= len(batch)
        self._held_bytes -= batch.weight()
        return batch, queued

    def _spill(self, batch: Batch) -> bool:
        try:
            self.spill.append(batch.to_line(self.spill_prefix + uuid.uuid4().hex))
        except (SpillFull, OSError) as exc:
            self._spill_problem = str(exc) if isinstance(exc, SpillFull) else in_words(exc)
            self.refusing = True
            log.error(
                "store: cannot spill to %s (%s); refusing new requests until the store writes",
                self.spill.path,
                self._spill_problem,
            )
            return False
        except (TypeError, ValueError) as exc:  # a value with no JSON form: keep it in memory
            log.error("store: cannot spill %s: %s", batch.describe(), exc)
            return False
        self.stats.spilled += len(batch)
        return True

    def save_on_exit(self) -> None:
        """Closing with records the store would not take: the spill file is their last hope."""
        while self._held:
            batch, _ = self._pop()
            if self._spill_problem is None and self._spill(batch):
                continue
            self.stats.dropped += len(batch)
            log.error("store: %d records lost at exit: %s", len(batch), self.failure)
        if self.spill.pending:
            log.warning("store: records not yet in the database wait in %s", self.spill.path)

    # -- getting it back in --------------------------------------------------------------

    def retry(self, conn: Connection, write: Write) -> bool:
        """Try the store again: the held batches in order, else a replay or a probe. True
        once it writes."""
        self._retry_at = _monotonic() + self.retry_interval
        while self._held:
            batch, queued = self._pop()
            left = write(batch, None)
            if left is not None:  # still failing: what is left goes back to the front
                self._held.appendleft((left, queued))
                self.held_count += len(left)
                self._held_bytes += left.weight()
                return False
        if self.failure is not None:
            if self.spill.pending:
                self.replay(conn, write, probe=True)
            else:
                self._probe(conn)
        return self.failure is None

    def _probe(self, conn: Connection) -> None:
        """A write that changes nothing, to learn whether the store takes writes again."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO spilled_batches (id, ts) VALUES ('probe', 0) "
                    "ON CONFLICT (id) DO NOTHING"
                )
                conn.execute("DELETE FROM spilled_batches WHERE id = 'probe'")
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        except Exception as exc:
            if is_store_fault(exc):
                self.fail(exc)
            return
        self.recovered()

    def replay(self, conn: Connection, write: Write, *, probe: bool = False) -> None:
        """Replay spill-file lines into the database for a short while (one, as a probe)."""
        spill = self.spill
        until = _monotonic() + _REPLAY_SLICE_S
        while True:
            entry = spill.next_line()
            if entry is None:
                break
            line, end = entry
            try:
                spill_id, batch = Batch.from_line(line)
            except Exception as exc:
                log.error("store: skipping an unreadable line of %s: %s", spill.path, exc)
                spill.advance(end)
                continue
            if not self._replayed_before(conn, spill_id):
                if write(batch, spill_id) is not None:
                    return  # failing again; the line stays for the next try
                self.stats.replayed += len(batch)
            spill.advance(end)
            if probe or _monotonic() >= until:
                break
        if not spill.pending:
            spill.finish()
            log.warning(
                "store: replayed %s into the database (%d records in all); deleted it",
                spill.path,
                self.stats.replayed,
            )

    def _replayed_before(self, conn: Connection, spill_id: str) -> bool:
        try:
            row = conn.execute("SELECT 1 FROM spilled_batches WHERE id = ?", (spill_id,))
            return row.fetchone() is not None
        except Exception:
            return False  # the write that follows meets the same trouble and reports it


def rollback(conn: Connection) -> None:
    if conn.in_transaction:
        # A failing disk may refuse this too; SQLite rolls the transaction back regardless.
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
