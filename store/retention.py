"""Retention: deleting request bodies and samples older than their keep time, a chunk at a time.

Each step deletes at most `CHUNK` rows per table in one short transaction, so a prune of
millions of rows never holds the write lock for long; the writer interleaves queued
records between steps. Request rows and the daily/hourly rollups are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

from omen_store.dbapi import Connection

CHUNK = 5000

# (table, statement deleting up to CHUNK rows older than the cutoff, which cutoff applies)
_STEPS: tuple[tuple[str, str, str], ...] = (
    (
        "request_bodies",
        "DELETE FROM request_bodies WHERE rowid IN "
        "(SELECT rowid FROM request_bodies WHERE ts < ? ORDER BY ts LIMIT ?)",
        "bodies",
    ),
    (
        "health_samples",
        "DELETE FROM health_samples WHERE id IN "
        "(SELECT id FROM health_samples WHERE ts < ? ORDER BY ts LIMIT ?)",
        "samples",
    ),
    (
        "gpu_samples",
        "DELETE FROM gpu_samples WHERE id IN "
        "(SELECT id FROM gpu_samples WHERE ts < ? ORDER BY ts LIMIT ?)",
        "samples",
    ),
    (
        "spend_minutely",
        "DELETE FROM spend_minutely WHERE (minute, container, provider) IN "
        "(SELECT minute, container, provider FROM spend_minutely WHERE minute < ? "
        "ORDER BY minute LIMIT ?)",
        "samples",
    ),
    # One row per endpoint: an endpoint silent for the whole retention is gone from config.
    (
        "health_latest",
        "DELETE FROM health_latest WHERE rowid IN "
        "(SELECT rowid FROM health_latest WHERE ts < ? LIMIT ?)",
        "samples",
    ),
    (
        "gpu_latest",
        "DELETE FROM gpu_latest WHERE rowid IN (SELECT rowid FROM gpu_latest WHERE ts < ? LIMIT ?)",
        "samples",
    ),
)


@dataclass(slots=True)
class PruneJob:
    """Delete bodies older than `bodies_before` and samples older than `samples_before`."""

    bodies_before: float
    samples_before: float
    deleted: int = 0
    continuing: bool = False  # requeued by the writer for another chunk

    @classmethod
    def from_retention(cls, now: float, keep_bodies_s: float, keep_samples_s: float) -> PruneJob:
        # A keep time of 0 keeps nothing: every existing row is older than +inf.
        bodies = now - keep_bodies_s if keep_bodies_s > 0 else float("inf")
        samples = now - keep_samples_s if keep_samples_s > 0 else float("inf")
        return cls(bodies_before=bodies, samples_before=samples)


def prune_step(conn: Connection, job: PruneJob) -> bool:
    """Delete one chunk per table in one transaction; True when more remains to delete."""
    more = False
    conn.execute("BEGIN IMMEDIATE")
    try:
        for _table, statement, cutoff_kind in _STEPS:
            cutoff = job.bodies_before if cutoff_kind == "bodies" else job.samples_before
            deleted = conn.execute(statement, (cutoff, CHUNK)).rowcount
            job.deleted += deleted
            more = more or deleted >= CHUNK
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return more
