"""A fleet's PostgreSQL store for the console benchmark, loaded fast with COPY.

The rows are the demo's history (omen.demo.seed, with the seed bench.console gives SQLite), its
writer swapped for one that encodes each record with the store's own `Batch` — the batching
writer's encoding — and streams them into the tables with COPY, 50,000 requests a statement,
spread round-robin over a few instance names (probes and GPU samples by minute). The rollup
and outcome triggers are statement triggers with a transition table: COPY fires them as an
INSERT does, so spend_daily/hourly/minutely come out as the daemon's writer leaves them (the
build checks). health_latest and gpu_latest are then filled from the samples, and the
database vacuumed and analysed, as autovacuum would have done by the time anyone looks.

A database the benchmark built is marked (a comment on `requests`) and reused while the
mark matches; one holding requests it did not write is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

import omen.demo.seed
from omen_store import GpuSample, HealthSample, RequestRecord, display_store
from omen_store.batch import REQUEST_COLUMNS, Batch
from omen_store.pg_schema import TABLES
from omen_store.schema import connect_for_writing

INSTANCES = ("omen-a", "omen-b", "omen-c")
CHUNK = 50_000  # requests a COPY statement (one trigger run over them)
_HEALTH = "ts, provider, endpoint, healthy, latency_ms, error, in_flight, instance"
_GPU = (
    "ts, provider, endpoint, loaded_models, vram_used_bytes, vram_total_bytes, "
    "gpu_util_percent, in_flight, instance"
)


def fleet_store(
    url: str,
    *,
    rows: int,
    containers: int,
    days: float = 30.0,
    seed: int = 42,
    instances: Sequence[str] = INSTANCES,
) -> str:
    """The store at `url` holding the benchmark's rows (built unless already there)."""
    mark = f"bench.console: {rows} requests, {containers} containers, {','.join(instances)}"
    _create_database(url)
    connect_for_writing(url).close()  # the schema, migrated as `omen serve` would
    with psycopg.connect(url, autocommit=True) as pg:
        found = pg.execute("SELECT obj_description('requests'::regclass)").fetchone()
        if found and found[0] == mark:
            return url
        if found and found[0] and str(found[0]).startswith("bench.console:"):
            names = ", ".join(TABLES)
            pg.execute(f"TRUNCATE {names} RESTART IDENTITY")  # another size of ours
        elif pg.execute("SELECT EXISTS (SELECT 1 FROM requests)").fetchone() != (False,):
            raise SystemExit(
                f"{display_store(url)} holds requests the benchmark did not write: "
                "give it an empty or a new database"
            )
        started = time.perf_counter()
        print(
            f"building {display_store(url)}: {rows:,} requests, {containers} containers, "
            f"instances {', '.join(instances)} (COPY) …",
            flush=True,
        )
        with _copying(pg, instances) as writer:
            omen.demo.seed.seed_store(
                writer.target, rows=rows, containers=containers, days=days, seed=seed
            )
        _finish(pg, rows)
        pg.execute(sql.SQL("COMMENT ON TABLE requests IS {}").format(sql.Literal(mark)))
        size = pg.execute("SELECT pg_database_size(current_database())").fetchone()
        megabytes = int(size[0]) / 1e6 if size else 0.0
        print(f"built in {time.perf_counter() - started:.0f} s ({megabytes:.0f} MB)")
    return url


class CopyWriter:
    """What omen.demo.seed sees as its StoreWriter: records, encoded by the store's Batch,
    go to the tables by COPY every CHUNK requests."""

    target = "postgresql://bench-copy"  # what seed_store is handed (it passes it to us)

    def __init__(self, pg: psycopg.Connection[Any], instances: Sequence[str]) -> None:
        self.pg = pg
        self.instances = tuple(instances)
        self.requests = 0
        self._batches = self._new_batches()

    def _new_batches(self) -> list[Batch]:
        return [Batch(keep_bodies=True, instance=name) for name in self.instances]

    # -- StoreWriter's surface, as the seeder uses it ------------------------------------------

    def start(self) -> None:
        pass

    def record_request(self, record: RequestRecord, body: dict[str, Any] | None = None) -> None:
        self._batches[self.requests % len(self.instances)].add(record, body)
        self.requests += 1
        if self.requests % CHUNK == 0:
            self.flush()

    def record_health(self, sample: HealthSample) -> None:
        self._by_minute(sample.ts).add(sample)

    def record_gpu(self, sample: GpuSample) -> None:
        self._by_minute(sample.ts).add(sample)

    def close(self, timeout: float = 0.0) -> None:
        self.flush()

    # -- COPY ------------------------------------------------------------------------------------

    def _by_minute(self, ts: float) -> Batch:
        """Each minute's probes come from one instance in turn: every instance probes every
        endpoint, a minute or two apart."""
        return self._batches[int(ts // 60) % len(self.instances)]

    def flush(self) -> None:
        batches, self._batches = self._batches, self._new_batches()
        requests = [row for batch in batches for row, _ in batch.requests]
        bodies = [body for batch in batches for _, body in batch.requests if body is not None]
        self._copy(f"requests ({REQUEST_COLUMNS})", requests)
        self._copy("request_bodies (request_id, ts, body)", bodies)
        self._copy(f"health_samples ({_HEALTH})", (r for b in batches for r in b.health))
        self._copy(f"gpu_samples ({_GPU})", (r for b in batches for r in b.gpu))

    def _copy(self, target: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with self.pg.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                # Booleans are 0/1 integers in the store (as SQLite keeps them).
                copy.write_row([int(v) if isinstance(v, bool) else v for v in row])


@contextmanager
def _copying(pg: psycopg.Connection[Any], instances: Sequence[str]) -> Iterator[CopyWriter]:
    writer = CopyWriter(pg, instances)
    real = omen.demo.seed.StoreWriter
    omen.demo.seed.StoreWriter = lambda *args, **kwargs: writer  # type: ignore[assignment,misc]
    try:
        yield writer
    finally:
        omen.demo.seed.StoreWriter = real  # type: ignore[misc]


def _finish(pg: psycopg.Connection[Any], rows: int) -> None:
    for latest, samples, columns in (
        ("health_latest", "health_samples", _HEALTH),
        ("gpu_latest", "gpu_samples", _GPU),
    ):
        pg.execute(
            f"INSERT INTO {latest} ({columns}) SELECT DISTINCT ON (instance, provider, endpoint) "
            f"{columns} FROM {samples} ORDER BY instance, provider, endpoint, ts DESC"
        )
    pg.execute("VACUUM ANALYZE")
    for table in ("spend_daily", "spend_hourly", "spend_minutely"):
        found = pg.execute(f"SELECT sum(requests) FROM {table}").fetchone()
        if not found or found[0] != rows:
            raise SystemExit(f"the rollup {table} counts {found} requests, not {rows}")


def _create_database(url: str) -> None:
    """CREATE DATABASE for the URL's database, if it is not there (on the same server)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit(f"{display_store(url)} names no database")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as pg:
        there = pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if there is None:
            pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
