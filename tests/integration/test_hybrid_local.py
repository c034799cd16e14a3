"""The seed's hybrid and per-container deployments through the real stack: `omen serve` on a
real port and SQLite file, fake Ollama boxes on real ports.

Hybrid: containers `app` and `other` each have a box of their own (`local_endpoint`), `plain`
has none; all three share one more box. Per-container: `omen serve` with no config file,
configured by `OMEN_PROVIDERS` and `OMEN_OLLAMA_ENDPOINT` alone, as the seed's image runs it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes import ErrorReply, FakeState, RunningFake, make_ollama_app, run_fake
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    OTHER_KEY,
    Omen,
    free_port,
    omen_env,
    wait_for_rows,
)

PLAIN_KEY = "sk-omen-plain-0123456789"
MODEL = "llama3.1:8b"
APP_ONLY_MODEL = "qwen2.5:7b"  # pulled on app's box alone


@dataclass
class Boxes:
    app: FakeState
    app_server: RunningFake
    other: FakeState
    shared: FakeState
    omen: Omen


@pytest.fixture
def boxes(omen_factory: Callable[..., Omen]) -> Iterator[Boxes]:
    app = FakeState(models=[MODEL, APP_ONLY_MODEL], loaded=[MODEL])
    other = FakeState(models=[MODEL])
    shared = FakeState(models=[MODEL])
    with (
        run_fake(make_ollama_app(app)) as app_server,
        run_fake(make_ollama_app(other)) as other_server,
        run_fake(make_ollama_app(shared)) as shared_server,
    ):
        omen = omen_factory(
            f"""
[auth]
api_keys = [{{ key = "env:TEST_ADMIN_KEY", scope = "admin" }}]

[routing]
prefer_local = true

[providers.ollama]
endpoints = [{{ url = "{shared_server.url}", name = "shared" }}]
models = ["{MODEL}"]
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"
local_endpoint = "{app_server.url}"

[containers.other]
api_key = "env:TEST_OTHER_KEY"
local_endpoint = "{other_server.url}"

[containers.plain]
api_key = "env:TEST_PLAIN_KEY"
""",
            extra_env={"TEST_PLAIN_KEY": PLAIN_KEY},
        )
        yield Boxes(app, app_server, other, shared, omen)


def chat(omen: Omen, key: str, model: str = "auto") -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def admin(omen: Omen, path: str, body: dict[str, object] | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    if body is None:
        return httpx.get(f"{omen.url}{path}", headers=headers, timeout=10)
    return httpx.post(f"{omen.url}{path}", json=body, headers=headers, timeout=10)


def served(boxes: Boxes) -> tuple[int, int, int]:
    return boxes.app.served, boxes.other.served, boxes.shared.served


def test_each_container_is_served_by_its_own_box(boxes: Boxes) -> None:
    omen = boxes.omen
    for key, endpoint in ((APP_KEY, "local-app"), (OTHER_KEY, "local-other")):
        response = chat(omen, key)
        assert response.status_code == 200, response.text
        assert response.headers["x-omen-provider"] == "ollama"
        assert f"@{endpoint}:" in response.headers["x-omen-route-reason"]

    assert served(boxes) == (1, 1, 0)
    rows = wait_for_rows(omen.database, 2)
    assert [(r.container, r.endpoint) for r in rows] == [  # type: ignore[attr-defined]
        ("app", "local-app"),
        ("other", "local-other"),
    ]


def test_a_container_without_a_box_never_reaches_the_reserved_ones(boxes: Boxes) -> None:
    omen = boxes.omen
    for model in ("auto", MODEL, f"ollama/{MODEL}"):
        assert "@shared:" in chat(omen, PLAIN_KEY, model).headers["x-omen-route-reason"]
    # Failover does not reach them either: the shared box fails and there is nowhere else.
    boxes.shared.script.push(ErrorReply(503))
    failed = chat(omen, PLAIN_KEY)
    # A model pulled only on app's box is neither listed for nor served to the others.
    listed = httpx.get(
        f"{omen.url}/v1/models", headers={"authorization": f"Bearer {PLAIN_KEY}"}, timeout=10
    ).json()["data"]
    own_listing = httpx.get(
        f"{omen.url}/v1/models", headers={"authorization": f"Bearer {APP_KEY}"}, timeout=10
    ).json()["data"]
    unknown = chat(omen, OTHER_KEY, APP_ONLY_MODEL)

    assert failed.status_code == 503
    assert APP_ONLY_MODEL not in {m["id"] for m in listed}
    assert APP_ONLY_MODEL in {m["id"] for m in own_listing}
    assert unknown.status_code == 404
    assert served(boxes) == (0, 0, 4)
    rows = wait_for_rows(omen.database, 5)
    assert {r.endpoint for r in rows} == {"shared", None}  # type: ignore[attr-defined]


def test_a_drained_box_sends_its_container_to_the_shared_box(boxes: Boxes) -> None:
    omen = boxes.omen
    drained = admin(
        omen,
        "/admin/endpoints/drain",
        {"provider": "ollama", "endpoint": "local-app", "reason": "new GPU"},
    )
    assert drained.status_code == 200, drained.text
    while_drained = chat(omen, APP_KEY)
    admin(omen, "/admin/endpoints/undrain", {"provider": "ollama", "endpoint": "local-app"})
    after = chat(omen, APP_KEY)

    assert "@shared:" in while_drained.headers["x-omen-route-reason"]
    assert "@local-app:" in after.headers["x-omen-route-reason"]
    assert served(boxes) == (1, 0, 1)


def test_a_box_that_goes_down_fails_over_to_the_shared_box(boxes: Boxes) -> None:
    omen = boxes.omen
    boxes.app_server.stop()

    response = chat(omen, APP_KEY)

    assert response.status_code == 200, response.text
    (row,) = wait_for_rows(omen.database, 1)
    attempts = [a["endpoint"] for a in row.decision["attempts"]]  # type: ignore[attr-defined]
    assert attempts == ["local-app", "shared"]
    assert row.endpoint == "shared"  # type: ignore[attr-defined]
    listing = {e["endpoint"]: e for e in admin(omen, "/admin/endpoints").json()["endpoints"]}
    assert listing["local-app"]["status"] == "cooling"


def test_a_box_is_probed_and_its_models_and_gpu_read_like_any_endpoint(boxes: Boxes) -> None:
    listing = {e["endpoint"]: e for e in admin(boxes.omen, "/admin/endpoints").json()["endpoints"]}

    assert set(listing) == {"shared", "local-app", "local-other"}
    assert listing["local-app"]["provider"] == "ollama"
    assert listing["local-app"]["status"] == "healthy"
    assert listing["local-app"]["loaded_models"] == [MODEL]  # from its /api/ps
    assert boxes.app.requests_to("/api/tags")  # model discovery


# --- per-container mode: the environment alone ------------------------------------------------


def serve_from_env(tmp_path: Path, env: dict[str, str]) -> Omen:
    """`omen serve` in an empty folder with no config file: everything comes from env."""
    port = free_port()
    full = omen_env()
    full.pop("OMEN_CONFIG", None)
    full.update(env, OMEN_BIND=f"127.0.0.1:{port}")
    log = tmp_path / "omen.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "omen", "serve"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=full,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return Omen(url, port, tmp_path / "omen.db", tmp_path / "omen.toml", process, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
    raise RuntimeError(f"omen serve did not come up:\n{log.read_text()}")


def test_omen_serve_runs_from_the_seeds_per_container_environment(tmp_path: Path) -> None:
    box = FakeState(models=[MODEL])
    with run_fake(make_ollama_app(box)) as server:
        omen = serve_from_env(
            tmp_path, {"OMEN_PROVIDERS": "ollama", "OMEN_OLLAMA_ENDPOINT": server.url}
        )
        try:
            providers = httpx.get(f"{omen.url}/providers", timeout=10).json()
            # Keyless on loopback: the container's own Omen, reached over its network namespace.
            response = httpx.post(
                f"{omen.url}/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
                timeout=10,
            )
        finally:
            omen.stop()

    assert response.status_code == 200, response.text
    assert box.served == 1
    assert providers["ollama"] == "healthy"
    assert (tmp_path / "omen.db").exists()  # the default store, in the working directory
