"""StoreWriter: the daemon's only write path, a thread that commits queued records in batches.

The request path never waits on disk: `record_*` calls put the record on a
`queue.SimpleQueue` and return (no lock held across I/O, no event-loop wakeup). The writer
thread owns its own sqlite3 connection; it collects whatever is queued for up to
`flush_interval` after the first record (or until `max_batch` records wait, or someone
calls `flush()`), then writes the batch and its spend-rollup deltas in ONE transaction.

What a `kill -9` can lose: the records still in the queue and the batch being written at
that instant, i.e. about one flush interval of records (0.1 s by default; more only if the
disk is slower than the arrival rate and the queue has backed up; `queue_depth()` shows
that). A half-written batch is rolled back by SQLite on the next open, so the request rows
and the rollups stay consistent. Committed batches survive a process crash (WAL with
synchronous=NORMAL); an OS crash or power cut can also undo the last few commits.
SIGTERM/SIGINT lose nothing: the daemon calls `close()`, which commits everything queued.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.batch import Batch
from store.records import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    GpuSample,
    HealthSample,
    RequestRecord,
)
from store.retention import PruneJob, prune_step
from store.schema import connect_for_writing

log = logging.getLogger("omen.store")

# Queue items are (record, body) pairs; control items are (marker, payload), a marker being
# one of these strings (a record is never a str).
_FLUSH = "flush"
_STOP = "stop"
_PRUNE = "prune"

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_MAX_LOGGED_FAILURES = 5  # per batch, so a broken disk does not flood the log


@dataclass(slots=True)
class WriterStats:
    """Counters for /metrics and the console; read without locking (approximate)."""

    committed: int = 0  # records committed
    batches: int = 0
    failed: int = 0  # records refused (encoding or SQL errors), each logged
    dropped: int = 0  # records offered after close()
    queue_depth: int = 0


class StoreWriter:
    """Batching writer; see the module docstring for its durability contract."""

    def __init__(
        self,
        path: str | Path,
        *,
        flush_interval: float = 0.1,
        max_batch: int = 2000,
        keep_bodies: bool = True,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.keep_bodies = keep_bodies
        self._queue: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._put = self._queue.put
        self._wake = threading.Event()  # set by flush()/close() to cut a collection short
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._prunes_in_progress = 0
        self._stats = WriterStats()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open (creating and migrating) the database and start the writer thread.

        Errors opening the file are raised here, to the daemon's startup.
        """
        if self._thread is not None:
            raise RuntimeError("StoreWriter already started")
        if self._closed:
            raise RuntimeError("StoreWriter is closed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect_for_writing(self.path)
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
        self._put((_STOP, None))
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.error(
                "store writer did not finish within %.1fs; %d queued records may be lost",
                timeout,
                self._queue.qsize(),
            )

    # -- the request path: enqueue and return --------------------------------------------

    def record_request(self, rec: RequestRecord, body: dict[str, Any] | None = None) -> None:
        """Queue a finished request and, for replay, its body.

        The body is redacted and encoded on the writer thread, so the caller hands both
        over: neither may be mutated after this call.
        """
        if self._closed:
            self._drop()
            return
        self._put((rec, body))

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

    def prune(self, keep_bodies_s: float, keep_samples_s: float) -> None:
        """Queue a retention prune; a keep time of 0 keeps none of those rows."""
        job = PruneJob.from_retention(time.time(), keep_bodies_s, keep_samples_s)
        self._enqueue_control(_PRUNE, job)

    # -- waiting for the disk (tests, shutdown, admin API via asyncio.to_thread) ---------

    def flush(self, timeout: float = 5) -> bool:
        """Block until everything queued before this call is committed; False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._queue.empty()
        if self._closed:  # close() commits everything; wait for it to finish
            thread.join(timeout)
            return not thread.is_alive()
        done = threading.Event()
        self._enqueue_control(_FLUSH, done)
        return done.wait(timeout)

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def stats(self) -> WriterStats:
        stats = self._stats
        return WriterStats(
            committed=stats.committed,
            batches=stats.batches,
            failed=stats.failed,
            dropped=stats.dropped,
            queue_depth=self._queue.qsize(),
        )

    def _enqueue(self, record: object) -> None:
        if self._closed:
            self._drop()
            return
        self._put((record, None))

    def _enqueue_control(self, marker: str, payload: object) -> None:
        self._put((marker, payload))
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
                items = self._collect()
                try:
                    keep_running = self._process(conn, items)
                except Exception:  # a bug here must not stop every later write
                    log.exception("store writer: unexpected error handling a batch")
                    keep_running = _release_waiters(items)
                if not keep_running:
                    break
        finally:
            conn.close()

    def _collect(self) -> list[tuple[Any, Any]]:
        """Block for the first item, then gather more until the interval ends or a trigger."""
        get = self._queue.get
        batch = [get()]
        # A control marker first means someone is waiting: take what is queued and go.
        control_first = type(batch[0][0]) is str
        if control_first:
            self._wake.clear()
        deadline = 0.0 if control_first else time.monotonic() + self.flush_interval
        poll = min(self.flush_interval / 10, 0.01)  # how soon a full batch is noticed
        while len(batch) < self.max_batch:
            try:
                item = get(block=False)
            except queue.Empty:
                remaining = deadline - time.monotonic()
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

    def _process(self, conn: sqlite3.Connection, items: list[tuple[Any, Any]]) -> bool:
        """Commit the records among `items`, then act on its control markers.

        Returns False once the stop marker has been handled.
        """
        records = [item for item in items if type(item[0]) is not str]
        if records:
            self._commit(conn, records)
        keep_running = True
        for marker, payload in items:
            if marker is _FLUSH:
                if self._prunes_in_progress:
                    # A prune queued before this flush is still going: wait behind it.
                    self._put((_FLUSH, payload))
                else:
                    payload.set()
            elif marker is _PRUNE:
                self._prune(conn, payload)
            elif marker is _STOP:
                keep_running = False
        if not keep_running:
            # Anything that raced in after the stop marker still gets written.
            leftovers = _drain(self._queue)
            records = [item for item in leftovers if type(item[0]) is not str]
            if records:
                self._commit(conn, records)
            for marker, payload in leftovers:
                if marker is _FLUSH:
                    payload.set()
        return keep_running

    def _commit(self, conn: sqlite3.Connection, records: list[tuple[Any, Any]]) -> None:
        batch = Batch(keep_bodies=self.keep_bodies)
        failures = 0
        for record, body in records:
            try:
                batch.add(record, body)
            except Exception as exc:
                failures += 1
                self._stats.failed += 1
                if failures <= _MAX_LOGGED_FAILURES:
                    log.error("store: refused %s: %s", _describe(record), exc)
        accepted = len(records) - failures
        if failures > _MAX_LOGGED_FAILURES:
            log.error("store: refused %d records in one batch", failures)
        if not accepted:
            return
        try:
            self._write_retrying(conn, batch)
        except Exception as exc:
            if _is_busy(exc):  # only while closing, after the retries: nothing else to do
                self._stats.failed += accepted
                log.error("store: database stayed locked; %d records not written", accepted)
                return
            log.error("store: batch of %d failed (%s); writing one by one", accepted, exc)
            self._commit_one_by_one(conn, records)
            return
        self._stats.committed += accepted
        self._stats.batches += 1

    def _commit_one_by_one(self, conn: sqlite3.Connection, records: list[tuple[Any, Any]]) -> None:
        """After a failed batch: keep every record that can be written, log the others."""
        failures = 0
        for record, body in records:
            single = Batch(keep_bodies=self.keep_bodies)
            try:
                single.add(record, body)
            except Exception:
                continue  # already counted and logged when the batch was encoded
            try:
                self._write_retrying(conn, single)
            except Exception as exc:
                failures += 1
                self._stats.failed += 1
                if failures <= _MAX_LOGGED_FAILURES:
                    log.error("store: could not write %s: %s", _describe(record), exc)
                continue
            self._stats.committed += 1
        if failures > _MAX_LOGGED_FAILURES:
            log.error("store: %d records of one batch could not be written", failures)

    def _write_retrying(self, conn: sqlite3.Connection, batch: Batch) -> None:
        """One transaction; a busy database (another writer holding the lock) is waited out."""
        attempt = 0
        while True:
            try:
                _write(conn, batch)
                return
            except sqlite3.OperationalError as exc:
                attempt += 1
                if not _is_busy(exc) or (self._closed and attempt >= 3):
                    raise
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("store: database busy (attempt %d); retrying the batch", attempt)
                time.sleep(min(0.05 * attempt, 1.0))

    def _prune(self, conn: sqlite3.Connection, job: PruneJob) -> None:
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
            self._put((_PRUNE, job))
            return
        if job.continuing:
            self._prunes_in_progress -= 1
        if job.deleted:
            log.info("store: pruned %d old bodies and samples", job.deleted)


def _write(conn: sqlite3.Connection, batch: Batch) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        batch.write(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _release_waiters(items: list[tuple[Any, Any]]) -> bool:
    """Wake flush() callers of a batch that failed outright; False if it held the stop."""
    keep_running = True
    for marker, payload in items:
        if marker is _FLUSH:
            payload.set()
        elif marker is _STOP:
            keep_running = False
    return keep_running


def _is_busy(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES


def _drain(q: queue.SimpleQueue[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
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
