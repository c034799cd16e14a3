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
]


@pytest.mark.parametrize("argv", MISUSES, ids=[" ".join(a[:3]) for a in MISUSES])
def test_a_misuse_is_one_clear_line_and_a_non_zero_exit(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "not-a-database").write_text("hello\n")
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
    assert done.stderr.strip().splitlines()[-1].startswith(("omen", "cannot", "no store"))


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
