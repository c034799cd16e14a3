"""A store that stops taking writes while requests keep coming.

The disk "fills" without mounting anything: RLIMIT_FSIZE on the running daemon (prlimit), so
every write past the limit fails with EFBIG (Python ignores SIGXFSZ), as a full disk would.
Then `/ready` is 503 and says why, new requests are refused (the default
`on_store_failure = "refuse"`), `/metrics` shows the write errors, and the requests that were
answered 200 but never recorded are at most about one flush's worth — not "7,804 served, 372
recorded" as the issue measured.
"""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable

import httpx
import pytest

from tests.hostile.conftest import (
    APP_KEY,
    Hostile,
    hostile_config,
    stored_ids,
)
from tests.hostile.upstream import HostileUpstream
from tests.integration.conftest import Omen

BIG_TEXT = "lorem ipsum " * 2000  # ~24 KB a request body, kept for replay: the files grow fast
MAX_REQUESTS = 400
UNRECORDED_SLACK = 20
FLUSH_MS = 20


def metric_sum(text: str, name: str) -> float | None:
    values = [
        float(m.group(1))
        for m in re.finditer(rf"^{name}(?:_total)?(?:{{[^}}]*}})? (\S+)$", text, re.M)
    ]
    return sum(values) if values else None


@pytest.mark.timeout(90)
def test_a_store_that_cannot_write_makes_ready_503_and_refuses_requests(
    omen_starter: Callable[..., Omen], upstream: HostileUpstream
) -> None:
    # "About one flush's worth": at a 50 ms flush this machine now serves 21-23 of these
    # requests in one interval (Omen got ~12% cheaper a request), more than the slack; at 20 ms
    # one interval is ~10, so the slack of 20 still means "about one flush, not thousands".
    omen = omen_starter(
        hostile_config(upstream.url), server_extra=f'writer_flush_interval = "{FLUSH_MS}ms"'
    )
    Hostile(omen, upstream).warm_up()
    time.sleep(0.3)
    files = [p for p in omen.database.parent.glob("omen.db*")] + [omen.log]
    limit = max(p.stat().st_size for p in files if p.exists()) + 256 * 1024
    resource.prlimit(omen.process.pid, resource.RLIMIT_FSIZE, (limit, limit))

    served: list[str] = []  # ids answered 200
    served_after_not_ready = 0
    statuses: dict[int, int] = {}
    not_ready_at: int | None = None
    ready_body = ""
    with httpx.Client(base_url=omen.url, timeout=10) as client:
        for i in range(MAX_REQUESTS):
            response = client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": BIG_TEXT}]},
                headers={"authorization": f"Bearer {APP_KEY}"},
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                served.append(response.headers.get("x-omen-request-id", ""))
                if not_ready_at is not None:
                    served_after_not_ready += 1
            if not_ready_at is None and i % 5 == 0:
                ready = client.get("/ready")
                if ready.status_code == 503:
                    not_ready_at, ready_body = i, ready.text
            if not_ready_at is not None and i - not_ready_at >= 20:
                break
        metrics = client.get("/metrics").text
        ready_now = client.get("/ready")
    time.sleep(0.5)
    stored = stored_ids(omen.database)
    unrecorded = [rid for rid in served if rid not in stored]
    figures = (
        f"file-size limit {limit // 1024} KiB; statuses {statuses}; {len(served)} served, "
        f"{len(served) - len(unrecorded)} recorded, {len(unrecorded)} unrecorded; /ready 503 "
        f"after request {not_ready_at}; {served_after_not_ready} served after that"
    )
    print("store full:", figures)
    assert not_ready_at is not None, f"/ready never said 503 while writes failed; {figures}"
    assert re.search(r"store|database|disk|writ", ready_body, re.I), ready_body[:300]
    assert ready_now.status_code == 503, ready_now.text[:300]
    assert served_after_not_ready == 0, f"requests kept being served; {figures}"
    assert statuses.get(500, 0) == 0, f"a full store made requests a 500; {figures}"
    assert len(unrecorded) <= UNRECORDED_SLACK, f"answered but never recorded; {figures}"
    errors = metric_sum(metrics, "omen_store_write_errors")
    assert errors is not None and errors > 0, "write errors are not in /metrics"
    assert metric_sum(metrics, "omen_store_up") == 0, "omen_store_up is not 0 while writes fail"
    for name in ("omen_store_queue_depth", "omen_store_lag_seconds"):
        assert metric_sum(metrics, name) is not None, f"{name} is not in /metrics"
