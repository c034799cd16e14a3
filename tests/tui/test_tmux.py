"""The real `omen tui` process in tmux at 80x24, driven as an operator over SSH would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes import FakeState, make_ollama_app, run_fake
from tests.integration.conftest import ADMIN_KEY, Omen
from tests.tui.test_against_daemon import chat, two_ollamas

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Tmux:
    """One tmux server of our own (-L), so the session gets this test's environment."""

    def __init__(self, name: str) -> None:
        self.socket = name

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "omen")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "omen", *keys)
        time.sleep(0.3)  # keep an ESC apart from the next key, as a human would

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{screen}")
            time.sleep(0.1)

    def running(self) -> bool:
        return "omen" in self("list-sessions", "-F", "#{session_name}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux(f"omen-tui-test-{os.getpid()}")
    yield session
    session("kill-server")


def test_an_operator_drains_an_endpoint_from_omen_tui_in_tmux(
    omen_factory: Callable[..., Omen], tmux: Tmux
) -> None:
    fakes = [FakeState(models=["llama3.1:8b"]) for _ in range(2)]
    with run_fake(make_ollama_app(fakes[0])) as a, run_fake(make_ollama_app(fakes[1])) as b:
        omen = omen_factory(two_ollamas(a.url, b.url))
        request_id = chat(omen).headers["x-omen-request-id"]
        env = omen.env | {"TERM": "xterm-256color", "TZ": "UTC"}
        command = f"{sys.executable} -m omen tui --config {omen.config} --no-mouse"
        subprocess.run(
            ["tmux", "-L", tmux.socket, "new-session", "-d", "-s", "omen", "-x", "80", "-y", "24",
             command],
            env=env, cwd=omen.config.parent, check=True, timeout=10,
        )  # fmt: skip
        tmux.wait_for("daemon up")
        assert "1 Overview" in tmux.wait_for("q Quit")
        tmux.keys("2")
        tmux.wait_for(request_id)
        tmux.keys("3")
        tmux.wait_for("gpu-a")
        tmux.keys("d")
        tmux.wait_for("Drain ollama/gpu-a?")
        tmux.keys("-l", "maintenance")
        tmux.keys("Enter")
        tmux.wait_for("drained")
        listing = httpx.get(
            f"{omen.url}/admin/endpoints",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=5,
        ).json()["endpoints"]
        assert {e["endpoint"]: e["drain_reason"] for e in listing if e["drained"]} == {
            "gpu-a": "maintenance"
        }
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while tmux.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.running(), tmux.screen()
