"""StoreWriter: the daemon's only write path, a thread that commits queued records in batches.

The request path never waits on disk: `record_*` calls put the record (stamped with the
monotonic time) on a `queue.SimpleQueue` and return (no lock held across I/O, no event-loop
wakeup). The writer thread owns its own sqlite3 connection; it collects what is queued until
the oldest record has waited `flush_interval` less what a commit has lately taken (or until
`max_batch` records wait, or someone calls `flush()`), then writes the batch in ONE
transaction; the spend rollups follow by trigger (store.rollups).

What a `kill -9` can lose: the records not yet committed, i.e. about one flush interval of
records (0.1 s by default; more only if the disk is slower than the arrival rate and the
queue has backed up: `stats()` shows the lag). A half-written batch is rolled back by SQLite
on the next open. Committed batches survive a process crash (WAL, synchronous=NORMAL); an
OS crash or power cut can also undo the last few commits. SIGTERM/SIGINT lose nothing that
can be written: the daemon calls `close()`, which commits everything queued.

When the database itself fails (disk full, read-only or corrupt file, I/O errors), the
writer keeps what it cannot commit and says so (`failure`, `refusing`): see store.backlog.
A record the database refuses on its own (a constraint) is logged and counted, and never
takes its batch with it.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omen_store.backlog import Backlog, OnFailure, rollback
from omen_store.batch import Batch
from omen_store.dbapi import Connection
from omen_store.errors import is_busy, is_store_fault
from omen_store.pg import COMMIT_ORDER_LOCK, PgConnection, display, is_postgres
from omen_store.records import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    FeedbackRecord,
    GpuSample,
    HealthSample,
    KeyCreated,
    KeyRevoked,
    RequestRecord,
)
from omen_store.retention import PruneJob, prune_step
from omen_store.schema import connect_for_writing
from omen_store.spill import SpillFile, default_spill_path

log = logging.getLogger("omen.store")

# Queue items are (record, body, monotonic time queued); control items are
# (marker, payload, 0.0), a marker being one of these strings (a record is never a str).
Item = tuple[Any, Any, float]
_FLUSH = "flush"
_STOP = "stop"
_PRUNE = "prune"

_MAX_LOGGED_FAILURES = 5  # per batch, so a broken disk does not flood the log
_BUSY_FAILURE_S = 10.0  # a lock held this long by another process counts as a failure
_SWITCH_INTERVAL_S = 0.001  # see start()
_monotonic = time.monotonic


@dataclass(slots=True)
class WriterStats:
    """Counters and gauges for /metrics and the console; read without locking (approximate)."""

    committed: int = 0  # records committed
    batches: int = 0  # transactions committed
    failed: int = 0  # records refused (encoding or SQL errors), each logged
    dropped: int = 0  # records lost: offered after close(), or more than a failing store holds
    queue_depth: int = 0  # records queued or in the writer's hands, not yet committed
    lag_s: float = 0.0  # age of the oldest record neither committed nor spilled
    since_commit_s: float | None = None  # None before the first commit
    failed_batches: int = 0  # transactions the database could not commit (store faults)
    spilled: int = 0  # records appended to the spill file
    replayed: int = 0  # records replayed from it into the database
    spill_bytes: int = 0  # size of the spill file now
    failure: str | None = None  # why the store cannot write now; None when it can
    last_error: str | None = None  # the last store fault, even one since recovered from
    last_error_at: float | None = None  # its unix time


class StoreWriter:
    """Batching writer; see the module docstring for its durability contract."""

    def __init__(
        self,
        path: str | Path,
        *,
        instance: str = "",
        flush_interval: float = 0.1,
        max_batch: int = 2000,
        keep_bodies: bool = True,
        on_failure: OnFailure = "refuse",
        spill_path: str | Path | None = None,
        spill_max_size: int = 256 * 1024 * 1024,
        retry_interval: float = 1.0,
        max_held_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if on_failure not in ("refuse", "spill"):
            raise ValueError("on_failure must be 'refuse' or 'spill'")
        # A SQLite file's path, or a PostgreSQL URL (store.pg): a fleet's shared store.
        self.postgres = is_postgres(path)
        self.path: Path | str = str(path) if self.postgres else Path(path)
        self.instance = instance  # names every row this writer writes
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.keep_bodies = keep_bodies
        self.spill = SpillFile(
            Path(spill_path) if spill_path else default_spill_path(self.path, instance),
            spill_max_size,
        )
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._put = self._queue.put
        self._wake = threading.Event()  # set by flush()/close() to cut a collection short
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._prunes_in_progress = 0
        self._stats = WriterStats()
        self._backlog = Backlog(
            display(self.path),
            self.spill,
            self._stats,
            on_failure=on_failure,
            retry_interval=retry_interval,
            max_held_bytes=max_held_bytes,
            # Replays are recorded in the store: on a shared one, each instance's are its own.
            spill_prefix=f"{instance}/" if self.postgres else "",
        )
        # Written by the writer thread only; read by anyone.
        self._in_batch = 0  # records of the batch being written
        self._oldest: float | None = None  # when the oldest record not yet safe was queued
        self._last_commit: float | None = None
        self._commit_cost = 0.0  # recent time from a batch's collection to its commit

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open (creating and migrating) the database and start the writer thread.

        Errors opening the file are raised here, to the daemon's startup.
        """
        if self._thread is not None:
            raise RuntimeError("StoreWriter already started")
        if self._closed:
            raise RuntimeError("StoreWriter is closed")
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect_for_writing(self.path, name=f"omen-writer {self.instance}")
        self.spill.open()
        if self.spill.pending:
            log.warning(
                "store: %s holds %d bytes of records a previous run could not write; "
                "replaying them",
                self.spill.path,
                self.spill.size,
            )
        else:  # the ids of this instance's finished replay are no longer needed
            prefix = self._backlog.spill_prefix
            self._conn.execute(
                "DELETE FROM spilled_batches WHERE substr(id, 1, ?) = ?", (len(prefix), prefix)
            )
        # Every SQLite call lets go of the GIL; while the event loop is busy, the writer then
        # waits up to a switch interval to get it back, several times a batch: at the default
        # 5 ms that adds ~50 ms of lag at 1,000 req/s (bench/store_kill.py), at 1 ms ~10 ms.
        if sys.getswitchinterval() > _SWITCH_INTERVAL_S:
            sys.setswitchinterval(_SWITCH_INTERVAL_S)
        self._thread = threading.Thread(target=self._run, name="omen-store-writer", daemon=True)
        self._thread.start()
        # A daemon thread dies with the interpreter; flush on a normal exit too.
        atexit.register(self.close)

    def close(self, timeout: float = 30.0) -> None:
        """Commit everything queued, stop the thread and close the database. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        thread = self._thread
        if thread is None:
            return
        self._put((_STOP, None, 0.0))
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.error(
                "store writer did not finish within %.1fs; %d queued records may be lost",
                timeout,
                self._queue.qsize(),
            )

    # -- the request path: enqueue and return --------------------------------------------

    @property
    def failure(self) -> str | None:
        """Why the store cannot write now, in words; None while it can."""
        return self._backlog.failure

    @property
    def refusing(self) -> bool:
        """Whether new requests should be refused: the store cannot write and what arrives
        cannot be spilled either."""
        return self._backlog.refusing

    def record_request(self, rec: RequestRecord, body: dict[str, Any] | None = None) -> None:
        """Queue a finished request and, for replay, its body.

        The body is redacted and encoded on the writer thread, so the caller hands both
        over: neither may be mutated after this call.
        """
        if self._closed:
            self._drop()
            return
        self._put((rec, body, _monotonic()))

    def record_health(self, sample: HealthSample) -> None:
        self._enqueue(sample)

    def record_gpu(self, sample: GpuSample) -> None:
        self._enqueue(sample)

    def record_audit(self, record: AuditRecord) -> None:
        self._enqueue(record)

    def record_budget_change(self, change: BudgetChange) -> None:
        """Queue a budget change; it also sets the container's persisted override."""
        self._enqueue(change)

    def record_drain(self, change: DrainChange) -> None:
        """Queue a drain/undrain; it sets the endpoint's persisted drain state."""
        self._enqueue(change)

    def record_feedback(self, record: FeedbackRecord) -> None:
        """Queue a client's verdict on an answer; the outcome statistics follow by trigger."""
        self._enqueue(record)

    def record_key(self, change: KeyCreated | KeyRevoked) -> None:
        """Queue a key made or revoked through the admin API (flush() before answering: a
        key the caller was given must still work after a crash)."""
        self._enqueue(change)

    def prune(self, keep_bodies_s: float, keep_samples_s: float) -> None:
        """Queue a retention prune; a keep time of 0 keeps none of those rows."""
        job = PruneJob.from_retention(time.time(), keep_bodies_s, keep_samples_s)
        self._enqueue_control(_PRUNE, job)

    # -- waiting for the disk (tests, shutdown, admin API via asyncio.to_thread) ---------

    def flush(self, timeout: float = 5) -> bool:
        """Block until everything queued before this call is committed (spill-file replay
        included); False on timeout or while the store cannot write."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._queue.empty()
        if self._closed:  # close() commits everything; wait for it to finish
            thread.join(timeout)
            return not thread.is_alive()
        done = threading.Event()
        self._enqueue_control(_FLUSH, done)
        return done.wait(timeout) and self._backlog.failure is None

    def queue_depth(self) -> int:
        return self._queue.qsize() + self._in_batch + self._backlog.held_count

    def stats(self) -> WriterStats:
        stats = self._stats
        now = _monotonic()
        oldest, last_commit = self._oldest, self._last_commit
        return WriterStats(
            committed=stats.committed,
            batches=stats.batches,
            failed=stats.failed,
            dropped=stats.dropped,
            queue_depth=self.queue_depth(),
            lag_s=0.0 if oldest is None else max(0.0, now - oldest),
            since_commit_s=None if last_commit is None else now - last_commit,
            failed_batches=stats.failed_batches,
            spilled=stats.spilled,
            replayed=stats.replayed,
            spill_bytes=self.spill.size,
            failure=self._backlog.failure,
            last_error=stats.last_error,
            last_error_at=stats.last_error_at,
        )

    def _enqueue(self, record: object) -> None:
        if self._closed:
            self._drop()
            return
        self._put((record, None, _monotonic()))

    def _enqueue_control(self, marker: str, payload: object) -> None:
        self._put((marker, payload, 0.0))
        self._wake.set()

    def _drop(self) -> None:
        self._stats.dropped += 1
        if self._stats.dropped == 1:
            log.warning("store writer is closed; records offered after close() are dropped")

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while True:
                items = self._collect(self._backlog.idle_wait())
                try:
                    keep_running = self._process(conn, items)
                except Exception:  # a bug here must not stop every later write
                    log.exception("store writer: unexpected error handling a batch")
                    keep_running = _release_waiters(items)
                if not keep_running:
                    break
        finally:
            self.spill.close()
            conn.close()

    def _collect(self, wait: float | None) -> list[Item]:
        """Block for the first item, then gather more until it is due or a trigger."""
        get = self._queue.get
        try:
            first = get() if wait is None else get(timeout=wait)
        except queue.Empty:
            return []
        batch = [first]
        # A control marker first means someone is waiting: take what is queued and go.
        if type(first[0]) is str:
            self._wake.clear()
            deadline = 0.0
        else:
            if self._oldest is None:
                self._oldest = first[2]
            # Committed one flush interval after the oldest was queued, the commit included.
            deadline = first[2] + self.flush_interval - self._commit_cost
        poll = min(self.flush_interval / 10, 0.01)  # how soon a full batch is noticed
        while len(batch) < self.max_batch:
            try:
                item = get(block=False)
            except queue.Empty:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    break
                if self._wake.wait(min(remaining, poll)):
                    self._wake.clear()
                    deadline = 0.0
                continue
            batch.append(item)
            if type(item[0]) is str:
                deadline = 0.0
        return batch

    def _process(self, conn: Connection, items: list[Item]) -> bool:
        """Commit the records among `items`, then act on its control markers.

        Returns False once the stop marker has been handled.
        """
        backlog = self._backlog
        write = partial(self._write, conn)
        records = [item for item in items if type(item[0]) is not str]
        if records:
            self._commit(conn, records)
        elif backlog.failure is not None and backlog.due():
            backlog.retry(conn, write)
        if backlog.failure is None and self.spill.pending:
            backlog.replay(conn, write)
        keep_running = True
        for marker, payload, _ in items:
            if marker is _FLUSH:
                if self._prunes_in_progress or (backlog.failure is None and self.spill.pending):
                    # A prune or a replay queued before this flush is still going: wait.
                    self._put((_FLUSH, payload, 0.0))
                else:
                    payload.set()
            elif marker is _PRUNE:
                self._prune(conn, payload)
            elif marker is _STOP:
                keep_running = False
        if not keep_running:
            self._finish(conn)
        self._oldest = backlog.oldest
        return keep_running

    def _finish(self, conn: Connection) -> None:
        """On close: write what raced in after the stop marker; keep what cannot be written."""
        leftovers = _drain(self._queue)
        records = [item for item in leftovers if type(item[0]) is not str]
        if records:
            self._commit(conn, records)
        backlog = self._backlog
        if backlog.failure is not None:
            backlog.retry(conn, partial(self._write, conn))
        backlog.save_on_exit()
        for marker, payload, _ in leftovers:
            if marker is _FLUSH:
                payload.set()

    def _commit(self, conn: Connection, records: list[Item]) -> None:
        began = _monotonic()
        batch = Batch(keep_bodies=self.keep_bodies, instance=self.instance)
        failures = 0
        for record, body, _ in records:
            try:
                batch.add(record, body)
            except Exception as exc:
                failures += 1
                self._stats.failed += 1
                if failures <= _MAX_LOGGED_FAILURES:
                    log.error("store: refused %s: %s", _describe(record), exc)
        if failures > _MAX_LOGGED_FAILURES:
            log.error("store: refused %d records in one batch", failures)
        if batch:
            self._in_batch = len(batch)
            queued = records[0][2]
            backlog = self._backlog
            failing = backlog.failure is not None
            if failing and not (backlog.due() and backlog.retry(conn, partial(self._write, conn))):
                backlog.hold(batch, queued)  # still failing: do not hammer a broken disk
            else:
                left = self._write(conn, batch)
                if left is not None:
                    backlog.hold(left, queued)
                else:
                    cost = _monotonic() - began
                    self._commit_cost = min(
                        self.flush_interval / 2, 0.8 * self._commit_cost + 0.2 * cost
                    )
            self._in_batch = 0

    def _write(self, conn: Connection, batch: Batch, spill_id: str | None = None) -> Batch | None:
        """Commit what the database takes of `batch`; returns what is left of it because the
        store itself fails (and sets `failure`), None when nothing is."""
        try:
            self._write_retrying(conn, batch, spill_id)
        except Exception as exc:
            if is_store_fault(exc):
                self._backlog.fail(exc)
                return batch
            if is_busy(exc):  # only while closing, after the retries: nothing else to do
                self._stats.failed += len(batch)
                log.error("store: database stayed locked; %d records not written", len(batch))
                return None
            if len(batch) == 1:
                self._stats.failed += 1
                log.error("store: could not write %s: %s", batch.describe(), exc)
                return None
            log.error("store: batch of %d failed (%s); writing one by one", len(batch), exc)
            return self._write_one_by_one(conn, batch, spill_id)
        self._committed(len(batch))
        return None

    def _write_one_by_one(
        self, conn: Connection, batch: Batch, spill_id: str | None
    ) -> Batch | None:
        """After a batch the database refused: keep every record it takes, log the others."""
        singles = list(batch.split())
        failures = 0
        for index, single in enumerate(singles):
            try:
                self._write_retrying(conn, single)
            except Exception as exc:
                if is_store_fault(exc):
                    self._backlog.fail(exc)
                    return Batch.join(singles[index:])
                failures += 1
                self._stats.failed += 1
                if failures <= _MAX_LOGGED_FAILURES:
                    log.error("store: could not write %s: %s", single.describe(), exc)
                continue
            self._committed(1)
        if failures > _MAX_LOGGED_FAILURES:
            log.error("store: %d records of one batch could not be written", failures)
        if spill_id is not None:  # the line is done with, even the records refused
            try:
                self._write_retrying(conn, Batch(keep_bodies=False), spill_id)
            except Exception as exc:
                if is_store_fault(exc):
                    self._backlog.fail(exc)
                    return Batch(keep_bodies=False)  # the line stays; its rows are in
                raise
        return None

    def _write_retrying(self, conn: Connection, batch: Batch, spill_id: str | None = None) -> None:
        """One transaction; a busy database (another writer holding the lock) is waited out."""
        attempt = 0
        began = _monotonic()
        while True:
            try:
                _write(conn, batch, spill_id)
                return
            except Exception as exc:
                attempt += 1
                if not is_busy(exc) or (self._closed and attempt >= 3):
                    raise
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("store: database busy (attempt %d); retrying the batch", attempt)
                if _monotonic() - began > _BUSY_FAILURE_S:
                    self._backlog.locked()
                time.sleep(min(0.05 * attempt, 1.0))

    def _committed(self, count: int) -> None:
        self._stats.committed += count
        self._stats.batches += 1
        self._last_commit = _monotonic()
        self._backlog.recovered()

    def _prune(self, conn: Connection, job: PruneJob) -> None:
        try:
            more = prune_step(conn, job)
        except Exception:
            log.exception("store: prune failed")
            more = False
        if more and not self._closed:
            # Records queued meanwhile go first; the job comes back for its next chunk.
            if not job.continuing:
                job.continuing = True
                self._prunes_in_progress += 1
            self._put((_PRUNE, job, 0.0))
            return
        if job.continuing:
            self._prunes_in_progress -= 1
        if job.deleted:
            log.info("store: pruned %d old bodies and samples", job.deleted)


def _write(conn: Connection, batch: Batch, spill_id: str | None) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if isinstance(conn, PgConnection):
            # The fleet's writers commit one at a time (SQLite's write lock does it there):
            # request seqs then become visible in seq order, so a reader that follows
            # `seq > mark` never meets a lower seq committed after it has moved on.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (COMMIT_ORDER_LOCK,))
        batch.write(conn)
        if spill_id is not None:
            conn.execute(
                "INSERT INTO spilled_batches (id, ts) VALUES (?, ?)", (spill_id, time.time())
            )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _release_waiters(items: list[Item]) -> bool:
    """Wake flush() callers of a batch that failed outright; False if it held the stop."""
    keep_running = True
    for marker, payload, _ in items:
        if marker is _FLUSH:
            payload.set()
        elif marker is _STOP:
            keep_running = False
    return keep_running


def _drain(q: queue.SimpleQueue[Item]) -> list[Item]:
    items = []
    while True:
        try:
            items.append(q.get(block=False))
        except queue.Empty:
            return items


def _describe(record: object) -> str:
    name = type(record).__name__
    ident = getattr(record, "id", None)
    return f"{name} {ident}" if ident is not None else name
