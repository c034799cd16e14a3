"""The real Redis for tests: skip when it is not there, fail when CI says it must be.

`redis_url_or_skip()` answers the URL of a test database (db 13 of 127.0.0.1:6379 unless
OMEN_TEST_REDIS_URL says otherwise) after a PING; tests keep to keys under `redis_prefix()`.
When Redis does not answer it skips the test, unless OMEN_REQUIRE_REDIS=1 (CI), where it fails.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

DEFAULT_URL = "redis://127.0.0.1:6379/13"

_checked: dict[str, str | None] = {}  # url -> None when reachable, else why not


def redis_url() -> str:
    return os.environ.get("OMEN_TEST_REDIS_URL", DEFAULT_URL)


def _where(url: str) -> str:
    kwargs = redis.connection.parse_url(url)
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port', 6379)}")


def _probe(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


# Keys of this run start with it: two suites (or a developer and CI) on one Redis never collide,
# and nothing is flushed.
RUN_PREFIX = f"omen-test-{uuid.uuid4().hex[:10]}"


def redis_prefix(name: str = "") -> str:
    """A key prefix of this run; `name` separates tests that must not share counters."""
    return f"{RUN_PREFIX}-{name}" if name else RUN_PREFIX


def redis_url_or_skip() -> str:
    url = redis_url()
    if url not in _checked:
        _checked[url] = _probe(url)
    why = _checked[url]
    if why is not None:
        reason = f"Redis not reachable at {_where(url)} ({why})"
        if os.environ.get("OMEN_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}; OMEN_REQUIRE_REDIS=1 requires it", pytrace=False)
        pytest.skip(reason)
    return url
