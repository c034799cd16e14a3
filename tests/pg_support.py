"""The real PostgreSQL for tests: a fresh database per test, dropped afterwards.

`pg_database()` (a context manager) creates `omen_test_<random>` on the server at
OMEN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres, trust auth)
and yields its URL. When the server does not answer it skips the test, unless
OMEN_REQUIRE_POSTGRES=1 (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_checked: dict[str, str | None] = {}  # admin url -> None when reachable, else why not


def admin_url() -> str:
    return os.environ.get("OMEN_TEST_POSTGRES_URL", DEFAULT_URL)


def _probe(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def require_postgres() -> str:
    """The admin URL, after checking the server answers (skip or fail as the module says)."""
    url = admin_url()
    if url not in _checked:
        _checked[url] = _probe(url)
    why = _checked[url]
    if why is not None:
        reason = f"PostgreSQL not reachable at {urlsplit(url).netloc} ({why})"
        if os.environ.get("OMEN_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}; OMEN_REQUIRE_POSTGRES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return url


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    return urlunsplit(urlsplit(admin_url())._replace(path=f"/{name}"))


@contextlib.contextmanager
def pg_database(prefix: str = "omen_test") -> Iterator[str]:
    """A new, empty database for one test; yields its URL and drops it afterwards (closing
    whatever connections the test left open)."""
    url = require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
