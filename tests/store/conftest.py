"""The store's backends as one fixture: every test taking `store_target` runs against a SQLite
file and against a fresh PostgreSQL database (tests.pg_support), with the same expectations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omen_store import StoreWriter
from tests.pg_support import pg_database

WriterFactory = Callable[..., StoreWriter]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the store lives: a SQLite file's path, or a postgresql:// URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "omen.db")
        return
    with pg_database() as url:
        yield url


@pytest.fixture
def make_writer(store_target: str, tmp_path: Path) -> Iterator[WriterFactory]:
    """Started writers on the store, closed after the test. Each gets its own spill file under
    tmp_path (a PostgreSQL writer's default one lives in the user's state folder)."""
    writers: list[StoreWriter] = []

    def make(**kwargs: Any) -> StoreWriter:
        kwargs.setdefault("spill_path", tmp_path / f"spill-{len(writers)}.jsonl")
        writer = StoreWriter(store_target, **kwargs)
        writer.start()
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()
