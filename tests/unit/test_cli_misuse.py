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
