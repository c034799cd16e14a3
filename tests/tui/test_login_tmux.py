"""An operator over SSH, in one 80x24 terminal (tmux): `omen login` prints a code, they
approve it at the issuer as a viewer, `omen tui` against a real `omen serve` names them and
their role in the header and refuses a drain with the reason, and `omen logout` forgets them.
No browser, no admin key anywhere: the daemon verifies the stored token against the issuer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeState, make_ollama_app, run_fake
from tests.integration.conftest import ROOT, Omen
from tests.oidc_issuer import (
    ADMIN_USER,
    AUDIENCE,
    CLIENT_ID,
    VIEWER_USER,
    OidcIssuer,
    rsa_key,
    running_issuer,
)
from tests.tui.test_tmux import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

PROMPT = "operator$"


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with running_issuer(OidcIssuer(keys=[rsa_key("tmux-key")])) as served:
        served.device_interval = 1  # polled for real here: keep the test short
        yield served


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    """A shell in an 80x24 tmux window whose config folder is the test's own."""
    tmux = Tmux(f"omen-login-test-{os.getpid()}")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": str(ROOT),
        "TERM": "xterm-256color",
        "TZ": "UTC",
    }
    subprocess.run(
        ["tmux", "-L", tmux.socket, "new-session", "-d", "-s", "omen", "-x", "80", "-y", "24",
         f"env PS1='{PROMPT} ' bash --norc --noprofile"],
        env=env, cwd=tmp_path, check=True, timeout=10,
    )  # fmt: skip
    yield tmux
    tmux("kill-server")


def daemon_config(issuer: OidcIssuer, ollama: str) -> str:
    """No API key at all: admin calls need an operator's sign-in."""
    return f"""
[auth.oidc]
issuer = "{issuer.url}"
client_id = "{CLIENT_ID}"
audience = "{AUDIENCE}"
admin_groups = ["omen-admins"]
viewer_groups = ["omen-viewers"]

[providers.ollama]
endpoints = [{{ url = "{ollama}", name = "gpu-a" }}]
models = ["llama3.1:8b"]
health_check_interval = "1h"
"""


def joined(terminal: Tmux) -> str:
    """The pane with the lines the terminal wrapped at 80 columns joined again."""
    return terminal("capture-pane", "-p", "-J", "-t", "omen")


def run(terminal: Tmux, command: str) -> None:
    terminal.keys("-l", command)
    terminal.keys("Enter")


def test_a_viewer_signs_in_over_ssh_and_the_console_names_them_and_refuses_a_drain(
    issuer: OidcIssuer, terminal: Tmux, omen_factory: Callable[..., Omen], tmp_path: Path
) -> None:
    with run_fake(make_ollama_app(FakeState(models=["llama3.1:8b"]))) as ollama:
        omen = omen_factory(daemon_config(issuer, ollama.url))
        omen_cmd = f"{sys.executable} -m omen"
        terminal.wait_for(PROMPT)

        run(terminal, f"{omen_cmd} login --config {omen.config}")
        terminal.wait_for("Waiting for approval")
        screen = joined(terminal)
        code = re.search(r"^Code: ([A-Z]{4}-[A-Z]{4})", screen, re.MULTILINE)
        assert code, screen
        assert f"Open {issuer.url}/device?user_code={code.group(1)} in a browser" in screen
        issuer.approve(code.group(1), VIEWER_USER)  # in a browser, on a laptop
        terminal.wait_for("knows you as", timeout=20)
        lines = joined(terminal).splitlines()
        assert f"Signed in at {issuer.url} as ann@example.com (groups: omen-viewers)." in lines
        assert (
            f"The daemon at {omen.url} knows you as ann@example.com: viewer (may look, not act)."
            in lines
        )
        (grant,) = issuer.device_grants.values()
        assert grant.audience == AUDIENCE and "offline_access" in grant.scope

        run(terminal, f"clear; {omen_cmd} tui --config {omen.config} --no-mouse")
        header = terminal.wait_for("ann@example.com (viewer)").splitlines()[0]
        assert "● up · ann@example.com (viewer)" in header
        terminal.keys("3")
        terminal.wait_for("gpu-a")
        terminal.keys("d")
        screen = terminal.wait_for("viewer role")
        assert "Drain ollama/gpu-a?" not in screen
        terminal.keys("q")
        terminal.wait_for(PROMPT)

        run(terminal, f"clear; {omen_cmd} logout")
        terminal.wait_for(f"Signed out ann@example.com ({issuer.url}); revoked at the issuer.")

    admin = issuer.access_token(ADMIN_USER, AUDIENCE, CLIENT_ID)
    listing = httpx.get(
        f"{omen.url}/admin/endpoints", headers={"authorization": f"Bearer {admin}"}, timeout=5
    ).json()["endpoints"]
    assert [e["endpoint"] for e in listing if e["drained"]] == []
    assert not (tmp_path / "config" / "omen" / "tokens.json").read_bytes().count(b"access_token")


def test_an_admin_signs_in_and_the_console_drains_as_them(
    issuer: OidcIssuer, terminal: Tmux, omen_factory: Callable[..., Omen]
) -> None:
    """The console acts with the signed-in identity: the drain it sends is the admin's, and
    the audit trail names them and their role."""
    with run_fake(make_ollama_app(FakeState(models=["llama3.1:8b"]))) as ollama:
        omen = omen_factory(daemon_config(issuer, ollama.url))
        omen_cmd = f"{sys.executable} -m omen"
        terminal.wait_for(PROMPT)

        run(terminal, f"{omen_cmd} login --config {omen.config}")
        terminal.wait_for("Waiting for approval")
        code = re.search(r"^Code: ([A-Z]{4}-[A-Z]{4})", joined(terminal), re.MULTILINE)
        assert code, joined(terminal)
        issuer.approve(code.group(1), ADMIN_USER)
        terminal.wait_for("knows you as", timeout=20)

        run(terminal, f"clear; {omen_cmd} tui --config {omen.config} --no-mouse")
        terminal.wait_for("(admin)")
        terminal.keys("3")
        terminal.wait_for("gpu-a")
        terminal.keys("d")
        terminal.wait_for("Drain ollama/gpu-a?")
        terminal.keys("-l", "from tmux")
        terminal.keys("Enter")
        terminal.wait_for("drained", timeout=10)
        terminal.keys("q")
        terminal.wait_for(PROMPT)

        run(terminal, f"clear; {omen_cmd} logs --config {omen.config} --audit")
        terminal.wait_for("drain ollama/gpu-a", timeout=10)
        (line,) = [line for line in joined(terminal).splitlines() if "drain ollama/gpu-a" in line]
        email = ADMIN_USER.email
        assert f"{email} (admin) drain ollama/gpu-a" in line, line
        assert "from tmux" in line
