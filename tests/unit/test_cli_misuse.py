"""Misusing the CLI gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MISUSES = [
    ["logs", "--since", "5 minutes", "--db", "{tmp}/none.db"],
    ["logs", "--since=-1h", "--db", "{tmp}/none.db"],
    ["logs", "--limit", "0", "--db", "{tmp}/none.db"],
    ["logs", "--db", "{tmp}/not-a-database"],
    ["serve", "--level", "bogus"],
    ["demo", "--rate", "0"],
    ["demo", "--rate", "-1"],
    ["demo", "--dir", "{tmp}/not-a-database"],
    ["serve", "--bind", "nowhere:99999"],
    ["serve", "--bind", "::1:8080"],
    ["config", "check", "--config", "/nonexistent"],
    ["config", "check", "--config", "{tmp}/broken.toml"],
    ["config", "frobnicate"],
    ["tui", "--db", "/nonexistent/dir/x.db"],
    ["tui", "--db", "{tmp}/not-a-database"],
    ["replay", "req_x", "--reroute", "--model", "gpt-4o"],
    ["replay"],
    [],
    ["whatif", "--price", "bogus"],
    ["whatif", "--since", "-1h"],
    ["import-boltfile", "/nonexistent"],
    ["import-boltfile", "{tmp}"],
    ["keys"],
    ["keys", "create"],
    ["keys", "create", "app", "--scope", "admin"],
    ["keys", "create", "app", "--scope", "root"],
    ["keys", "revoke"],
    ["keys", "list", "--url", "http://127.0.0.1:9"],
]


@pytest.mark.parametrize("argv", MISUSES, ids=[" ".join(a[:4]) or "(nothing)" for a in MISUSES])
def test_a_misuse_is_one_clear_line_and_a_non_zero_exit(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "not-a-database").write_text("hello\n")
    (tmp_path / "broken.toml").write_text("[server]\nbind = \n")
    args = [a.format(tmp=tmp_path) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "omen", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no usage block before the error
    assert lines[0].startswith(("omen", "cannot", "no store"))


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omen", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0 and done.stdout.startswith("omen ")


def test_replay_against_something_that_is_not_omen_says_so(tmp_path: Path) -> None:
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a login page</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "omen.toml").write_text('[server]\nbind = "127.0.0.1:1"\n')
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "omen",
                "replay",
                "req_x",
                "--url",
                f"http://127.0.0.1:{server.server_port}",
                "--config",
                str(tmp_path / "omen.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
    finally:
        server.shutdown()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "did not answer like Omen" in done.stderr


def _config_check(tmp_path: Path, toml: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "omen.toml").write_text(toml)
    return subprocess.run(
        [sys.executable, "-m", "omen", "config", "check", "--config", str(tmp_path / "omen.toml")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


PROVIDERS = """
[providers.openai]
api_key = "sk-not-a-real-key"
models = ["gpt-4o"]
[providers.anthropic]
api_key = "sk-not-a-real-key-either"
models = ["claude-sonnet-4"]
[providers.ollama]
endpoints = ["http://127.0.0.1:1"]
models = ["llama3.1:8b"]
enabled = false
"""


def test_config_check_names_the_provider_a_typo_in_allowed_providers_meant(tmp_path: Path) -> None:
    done = _config_check(
        tmp_path,
        PROVIDERS
        + '[containers.app]\nallowed_providers = ["anthropic", "opneai"]\n'
        + '[containers.app.routing]\nintents.code = "antropic"\n'
        + '[routing.intent_rules]\nreasoning = { provider = "olama" }\n',
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert (
        "containers.app.allowed_providers.1: no provider named 'opneai' is defined; "
        "did you mean 'openai'?"
    ) in lines
    assert any(
        line.startswith("containers.app.routing.intents.code.provider:")
        and "did you mean 'anthropic'?" in line
        for line in lines
    ), done.stdout
    assert any(
        line.startswith("routing.intent_rules.reasoning.provider:")
        and "did you mean 'ollama'?" in line
        for line in lines
    ), done.stdout


def test_config_check_counts_disabled_providers_apart(tmp_path: Path) -> None:
    done = _config_check(
        tmp_path,
        PROVIDERS
        + '[containers.app]\nallowed_providers = ["openai", "ollama"]\n'
        + "[containers.old]\nenabled = false\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.splitlines()[-1]
    assert "OK — 2 providers enabled, 1 disabled (ollama)" in summary
    assert "1 container enabled, 1 disabled (old)" in summary
    # A container that may use a disabled provider is told so, without failing the check.
    assert "warning: containers.app.allowed_providers.1: provider 'ollama' is disabled" in (
        done.stdout
    )


def test_a_reader_that_goes_away_is_no_traceback(tmp_path: Path) -> None:
    """`omen logs | head`: the pipe closes before omen has written everything."""
    (tmp_path / "omen.toml").write_text("")
    process = subprocess.Popen(
        [sys.executable, "-m", "omen", "config", "check", "--config", str(tmp_path / "omen.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # long before the interpreter has even started
    stderr = process.stderr.read()
    assert process.wait(timeout=30) == 141
    assert stderr == ""
