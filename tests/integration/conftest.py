"""Real parts: fake upstreams on real ports, `omen serve` as a process on a real SQLite file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes import FakeState, RunningFake, make_ollama_app, make_openai_app, run_fake

ROOT = Path(__file__).resolve().parents[2]
APP_KEY = "sk-omen-app-0123456789"
OTHER_KEY = "sk-omen-other-0123456789"
ADMIN_KEY = "sk-omen-admin-0123456789"
UPSTREAM_KEY = "sk-upstream-abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Upstreams:
    ollama: FakeState
    ollama_server: RunningFake
    openai: FakeState
    openai_server: RunningFake


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    ollama = FakeState(models=["llama3.1:8b", "nomic-embed-text"], loaded=["llama3.1:8b"])
    oai = FakeState(models=["gpt-4o", "text-embedding-3-small"], api_key=UPSTREAM_KEY)
    with (
        run_fake(make_ollama_app(ollama)) as ollama_server,
        run_fake(make_openai_app(oai)) as openai_server,
    ):
        yield Upstreams(ollama, ollama_server, oai, openai_server)


def base_config(up: Upstreams) -> str:
    return f"""
[auth]
api_keys = [{{ key = "env:TEST_ADMIN_KEY", scope = "admin" }}]

[providers.ollama]
endpoints = ["{up.ollama_server.url}"]
models = ["llama3.1:8b"]
embedding_models = ["nomic-embed-text"]
health_check_interval = "1h"

[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{up.openai_server.url}/v1"
models = ["gpt-4o"]
embedding_models = ["text-embedding-3-small"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"

[containers.other]
api_key = "env:TEST_OTHER_KEY"
"""


@dataclass
class Omen:
    url: str
    port: int
    database: Path
    config: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    stopped: bool = False

    def client(self, key: str = APP_KEY, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, **kwargs)  # type: ignore[arg-type]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def stop(self) -> int:
        """SIGTERM, as systemd or docker would; returns once the daemon has shut down cleanly."""
        if self.stopped:
            return 0
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # uvicorn re-raises the signal after its graceful shutdown, so -15 is a clean stop too;
        # the daemon's last log line is what proves the store was flushed.
        assert self.process.returncode in (0, -signal.SIGTERM), self.log.read_text()
        assert "store flushed" in self.log.read_text(), self.log.read_text()
        return 0

    def omen(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another `omen` command against the same config and store."""
        return subprocess.run(
            [sys.executable, "-m", "omen", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
            cwd=self.config.parent,
        )


def omen_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TEST_ADMIN_KEY=ADMIN_KEY,
        TEST_APP_KEY=APP_KEY,
        TEST_OTHER_KEY=OTHER_KEY,
        TEST_UPSTREAM_KEY=UPSTREAM_KEY,
        PYTHONPATH=str(ROOT),
    )
    return env


def start_omen(
    tmp_path: Path,
    config_text: str,
    *,
    extra_env: dict[str, str] | None = None,
    server_extra: str = "",
) -> Omen:
    port = free_port()
    config = tmp_path / "omen.toml"
    config.write_text(
        f'[server]\nbind = "127.0.0.1:{port}"\ndatabase = "omen.db"\n'
        + ("" if "writer_flush_interval" in server_extra else 'writer_flush_interval = "50ms"\n')
        + f"{server_extra}\n"
        + config_text
    )
    env = omen_env()
    env.update(extra_env or {})
    log = tmp_path / f"omen-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "omen", "serve", "--config", str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"omen serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"omen serve did not come up:\n{log.read_text()}")
    return Omen(url, port, tmp_path / "omen.db", config, process, log, env)


@pytest.fixture
def omen_factory(tmp_path: Path) -> Iterator[Callable[..., Omen]]:
    started: list[Omen] = []

    def factory(config_text: str, **kwargs: object) -> Omen:
        instance = start_omen(tmp_path, config_text, **kwargs)  # type: ignore[arg-type]
        started.append(instance)
        return instance

    yield factory
    failures: list[AssertionError] = []
    for instance in started:  # stop every daemon, even when one of them stops badly
        try:
            instance.stop()
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], upstreams: Upstreams) -> Omen:
    return omen_factory(base_config(upstreams))


def wait_for_rows(database: Path, count: int, timeout: float = 5.0) -> list[object]:
    """The writer commits within its flush interval; wait for it instead of sleeping blindly."""
    from omen_store import StoreReader

    deadline = time.monotonic() + timeout
    while True:
        try:
            reader = StoreReader(database)
            rows = reader.recent_requests(limit=1000)
        except Exception:
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return list(reversed(rows))
        time.sleep(0.05)
