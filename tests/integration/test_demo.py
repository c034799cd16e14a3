"""`omen demo` runs end to end: simulated GPU boxes and clouds, traffic, and a store to show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omen_store import StoreReader
from tests.integration.conftest import omen_env


def test_headless_demo_fills_the_store_with_traffic_and_gpu_samples(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "omen",
            "demo",
            "--headless",
            "--seconds",
            "6",
            "--rate",
            "8",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "requests sent" in result.stdout
    reader = StoreReader(tmp_path / "omen.db")
    rows = reader.recent_requests(limit=1000)
    assert len(rows) >= 10
    assert {r.container for r in rows} >= {"app", "dev"}
    assert {r.provider for r in rows if r.status == 200} >= {"ollama"}
    gpu = reader.latest_gpu()
    assert {g.endpoint for g in gpu} == {"gpu-4090", "gpu-3070"}
    assert all(g.gpu_util_percent is not None and g.vram_total_bytes for g in gpu)
    logs = subprocess.run(
        [
            sys.executable,
            "-m",
            "omen",
            "logs",
            "--config",
            str(tmp_path / "omen.toml"),
            "--limit",
            "3",
        ],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=30,
    )
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 3
