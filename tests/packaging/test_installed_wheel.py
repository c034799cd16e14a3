"""Omen as a user installs it: the wheel built from the checkout, in a fresh venv that cannot
see the checkout, its `omen serve` and `omen tui` driven in tmux at 80x24 and 160x48.

Every other test runs from the editable install, which reads files from the checkout; that hid
a wheel without the console's stylesheet (`omen tui` crashed after `pip install .`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from omen_store import RequestRow, StoreReader
from tests.fakes import FakeState, make_ollama_app, run_fake
from tests.integration.conftest import ADMIN_KEY, APP_KEY, Omen, free_port

ROOT = Path(__file__).resolve().parents[2]
SIZES = [(80, 24), (160, 48)]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# Two Ollama boxes (as in tests/tui/test_against_daemon.py), written here so that this test
# process never imports the console: only the venv's `omen tui` runs it.
TWO_OLLAMAS = """
[auth]
api_keys = [
  {{ key = "env:TEST_ADMIN_KEY", scope = "admin" }},
  {{ key = "env:TEST_APP_KEY", scope = "user" }},
]

[providers.ollama]
endpoints = [{{ url = "{a}", name = "gpu-a" }}, {{ url = "{b}", name = "gpu-b" }}]
models = ["llama3.1:8b"]
load_balancing = "least-loaded"
health_check_interval = "1h"
"""

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
    pytest.mark.timeout(300),
]


@dataclass
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path

    @property
    def omen(self) -> Path:
        return self.venv / "bin" / "omen"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def outside_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would point Python at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def checkout_files() -> list[str]:
    """The files a clone would have, as they are now: committed or not, ignored ones left out."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, cwd=ROOT, check=True, timeout=30,
    ).stdout.decode().split("\0")  # fmt: skip
    # A file deleted in the working tree but still in git's index is gone.
    return [name for name in listed if name and os.path.lexists(ROOT / name)]


def checkout_copy(target: Path) -> Path:
    """Building in place would leave build/ in the checkout, and setuptools reuses build/lib,
    which can carry deleted files into a wheel; venvs, caches and stores stay behind too."""
    for name in checkout_files():
        path, copy = ROOT / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            copy.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, copy)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """One wheel and one venv for the whole module: building and installing is the slow part."""
    root = tmp_path_factory.mktemp("wheel")
    source = checkout_copy(root / "source")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]

    def run(*command: str | Path) -> None:
        done = subprocess.run(
            [str(c) for c in command], capture_output=True, text=True, cwd=root,
            env=outside_env(), timeout=240,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"

    run(*pip, "wheel", "--no-deps", "-w", root / "dist", source)
    (wheel,) = (root / "dist").glob(f"omen-{VERSION}-*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    # The dev venv's pip installs into the new venv; every dependency pinned by constraints.txt.
    # --no-compile: byte-compiling botocore and friends doubles the time, and Python compiles
    # what it imports anyway.
    run(*pip, "--python", venv / "bin" / "python", "install", "--no-compile",
        "-c", ROOT / "constraints.txt", wheel)  # fmt: skip
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    return Installed(wheel, venv, site_packages)


def test_the_wheel_holds_the_stylesheet_and_no_generic_top_level_package(
    installed: Installed,
) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "omen_tui/app.tcss" in names
    top = {name.split("/")[0] for name in names}
    assert not top & {"store", "tui", "tests", "scripts", "bench"}, sorted(top)
    assert top == {"omen", "omen_store", "omen_tui", f"omen-{VERSION}.dist-info"}, sorted(top)


def test_the_wheel_holds_every_file_of_the_packages(installed: Installed) -> None:
    """Data files too (stylesheets, models): the editable install reads them from the checkout
    and would never miss them."""
    installed_as = {"omen": "omen", "store": "omen_store", "tui": "omen_tui"}
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    missing = []
    for name in checkout_files():
        folder, _, rest = name.partition("/")
        if folder in installed_as and rest and f"{installed_as[folder]}/{rest}" not in names:
            missing.append(name)
    assert missing == [], f"not in the wheel (declare them as package data): {missing}"


def test_the_installed_omen_runs_from_the_venv_not_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    version = subprocess.run(
        [installed.omen, "--version"], capture_output=True, text=True, cwd=tmp_path,
        env=outside_env(), timeout=30,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"omen {VERSION}"
    where = subprocess.run(
        [installed.python, "-c",
         "import omen, omen_store, omen_tui\n"
         "for m in (omen, omen_store, omen_tui): print(m.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=outside_env(), timeout=30,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    for path in map(Path, where.stdout.split()):
        assert path.is_relative_to(installed.site_packages), path
        assert not path.resolve().is_relative_to(ROOT), path
    assert (installed.site_packages / "omen_tui" / "app.tcss").is_file()


@dataclass
class Daemon:
    omen: Omen
    rows: list[RequestRow]  # the chat requests sent, newest first

    @property
    def env(self) -> dict[str, str]:
        return self.omen.env


@pytest.fixture(scope="module")
def daemon(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The venv's `omen serve` on two fake Ollama boxes, with a few requests already routed."""
    home = tmp_path_factory.mktemp("daemon")
    fakes = [FakeState(models=["llama3.1:8b"], loaded=["llama3.1:8b"]) for _ in range(2)]
    with run_fake(make_ollama_app(fakes[0])) as a, run_fake(make_ollama_app(fakes[1])) as b:
        omen = start(installed, home, TWO_OLLAMAS.format(a=a.url, b=b.url))
        try:
            for _ in range(4):
                answer = httpx.post(
                    f"{omen.url}/v1/chat/completions",
                    json={"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {APP_KEY}"},
                    timeout=10,
                )
                assert answer.status_code == 200, f"{answer.text}\n{omen.log.read_text()[-3000:]}"
            yield Daemon(omen, stored_rows(omen.database, 4))
        finally:
            omen.stop()


def start(installed: Installed, home: Path, config_text: str) -> Omen:
    port = free_port()
    config = home / "omen.toml"
    config.write_text(
        f'[server]\nbind = "127.0.0.1:{port}"\ndatabase = "omen.db"\n'
        f'writer_flush_interval = "50ms"\n{config_text}'
    )
    env = outside_env(TEST_ADMIN_KEY=ADMIN_KEY, TEST_APP_KEY=APP_KEY, TZ="UTC")
    log = home / "omen.log"
    process = subprocess.Popen(
        [installed.omen, "serve", "--config", config],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=home,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"omen serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return Omen(url, port, home / "omen.db", config, process, log, env)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.send_signal(signal.SIGKILL)
            raise RuntimeError(f"omen serve did not come up:\n{log.read_text()}")
        time.sleep(0.1)


def stored_rows(database: Path, count: int) -> list[RequestRow]:
    deadline = time.monotonic() + 10
    while True:
        rows = StoreReader(database).recent_requests(limit=100) if database.exists() else []
        if len(rows) >= count or time.monotonic() > deadline:
            assert len(rows) == count, rows
            return rows
        time.sleep(0.05)


def words(text: str) -> str:
    return " ".join(text.split())


class Pane:
    """The console in a tmux server of our own; every screen read is checked for a traceback."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env  # the server's, so the console's: tmux hands its own env to the pane

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10,
            env=self.env,
        )  # fmt: skip
        return done.stdout

    def screen(self) -> str:
        # A crash prints its traceback on the normal screen, maybe taller than the pane:
        # look through the scrollback too.
        everything = self("capture-pane", "-p", "-t", "omen", "-S", "-", "-E", "-")
        assert "Traceback" not in everything, everything
        return self("capture-pane", "-p", "-t", "omen")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "omen", *keys)
        time.sleep(0.3)  # keep an ESC apart from the next key, as a human would

    def wait_for(self, *texts: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                print(screen)  # the journey, in the report of a failure further on
                return screen
            if time.monotonic() > deadline:
                missing = [text for text in texts if text not in screen]
                raise AssertionError(f"{missing} never appeared; the screen:\n{screen}")
            time.sleep(0.1)

    def wait_gone(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while text in (screen := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} stayed; the screen:\n{screen}")
            time.sleep(0.1)
        return screen

    def exit_status(self) -> str:
        return self("display-message", "-p", "-t", "omen", "#{pane_dead} #{pane_dead_status}")


@pytest.fixture
def pane(daemon: Daemon, request: pytest.FixtureRequest) -> Iterator[Pane]:
    env = daemon.env | {"TERM": "xterm-256color"}
    pane = Pane(f"omen-wheel-{os.getpid()}-{request.node.callspec.id}", env)
    yield pane
    pane("kill-server")


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_view_of_the_installed_console_shows_real_data(
    installed: Installed, daemon: Daemon, pane: Pane, size: tuple[int, int]
) -> None:
    width, height = size
    config = daemon.omen.config
    command = f"{installed.omen} tui --config {config} --no-mouse"
    # remain-on-exit keeps a crashed console's traceback on screen for the assertions.
    pane("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
         "new-session", "-d", "-s", "omen", "-x", str(width), "-y", str(height),
         "-c", str(config.parent), command)  # fmt: skip
    newest = daemon.rows[0]

    # Every tab fits the header; the requests sent, counted from the store, under the
    # container their key belongs to.
    tabs = ("1 Overview", "2 Routing", "3 Providers", "4 GPU")
    pane.wait_for("daemon up", *tabs, f"{len(daemon.rows)} req", "default", "q Quit")

    pane.keys("2")
    routing = pane.wait_for(newest.id, f"{len(daemon.rows)} decisions")
    # The selected decision's reason, wrapped as the width allows, read in order.
    assert newest.reason and words(newest.reason) in words(routing), (
        f"the selected decision's reason {newest.reason!r} is not on screen:\n{routing}"
    )

    pane.keys("Enter")
    pane.wait_for(newest.id, "reason:", "candidates")
    pane.keys("Escape")
    pane.wait_for(f"{len(daemon.rows)} decisions", "enter: scores")

    pane.keys("3")
    providers = pane.wait_for("gpu-a")
    assert "gpu-b" in providers, f"the endpoints are not told apart:\n{providers}"

    pane.keys("4")
    pane.wait_for("GPU util", "VRAM", "llama3.1:8b", "last hour")  # /api/ps, as sampled

    pane.keys("?")
    pane.wait_for("Omen console — keys", "switch view")
    pane.keys("Escape")
    pane.wait_gone("Omen console — keys")

    pane.keys("q")
    deadline = time.monotonic() + 10
    while not pane.exit_status().startswith("1") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pane.exit_status().split() == ["1", "0"], pane.screen()
    pane.screen()  # nothing printed on the way out either
