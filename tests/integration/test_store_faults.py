"""Store faults, as an operator meets them: a kill -9 under load, a full disk, a bad file.

The full-disk tests mount a small tmpfs of their own (root or CAP_SYS_ADMIN, as CI has) and
fill it; where mounting is impossible they skip and say so.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.store_kill import measure
from omen_store import SCHEMA_VERSION, RequestRecord, StoreWriter
from tests.integration.conftest import (
    APP_KEY,
    ROOT,
    Omen,
    Upstreams,
    base_config,
    free_port,
    omen_env,
)

# A kill -9 loses what the writer has not committed: one flush interval, plus the commit in
# progress and whatever a loaded machine delays it by. This is the "small slack".
KILL_SLACK_S = 0.25
# Bodies this size fill the write-ahead log of a small disk in a few dozen requests.
LONG = [{"role": "user", "content": "Summarise this. " + "lorem ipsum " * 2000}]


def chat(http: httpx.Client) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={"model": "llama3.1:8b", "messages": LONG},
        headers={"authorization": f"Bearer {APP_KEY}"},
    )


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def stored_requests(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


# -- visible -------------------------------------------------------------------------------


def test_metrics_show_the_store_writers_queue_lag_and_errors(omen: Omen) -> None:
    with omen.http() as http:
        for _ in range(5):
            assert chat(http).status_code == 200

        def committed() -> bool:
            return metric(http.get("/metrics").text, "omen_store_committed_total") >= 5

        wait_until(committed, timeout=10)
        text = http.get("/metrics").text
    assert metric(text, "omen_store_up") == 1
    assert metric(text, "omen_store_queue_depth") >= 0
    assert metric(text, "omen_store_lag_seconds") < 5
    assert metric(text, "omen_store_seconds_since_commit") < 60
    assert metric(text, 'omen_store_write_errors_total{kind="batch"}') == 0
    assert metric(text, 'omen_store_write_errors_total{kind="record"}') == 0
    assert metric(text, "omen_store_dropped_total") == 0


# -- kill -9 ------------------------------------------------------------------------------


def test_kill_9_at_1000_records_a_second_loses_about_one_flush_interval() -> None:
    # A busy child (its event loop never idles) hands a real StoreWriter 1,000 records with
    # bodies a second; after 3 s it is killed. Before the writer made one SQLite call per
    # chunk instead of per row, this lost every one of the ~3,000 (the writer never got the
    # GIL back long enough to commit).
    result = measure(rate=1000, flush_interval=0.1, seconds=3, pythonpath=str(ROOT))
    assert result.achieved_rate > 500, "the load did not run"
    allowed = result.achieved_rate * (result.flush_interval + KILL_SLACK_S)
    assert result.lost <= allowed, (
        f"{result.lost} of {result.acknowledged} acknowledged records lost "
        f"(at most {allowed:.0f}: one flush interval + {KILL_SLACK_S} s)"
    )


# -- safe when writes fail -----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own, to fill."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "omen-test", str(disk)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a small disk to fill")
    if mounted.returncode != 0:
        pytest.skip(
            "cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): "
            + (mounted.stderr.strip() or f"mount exited {mounted.returncode}")
        )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)


def fill(disk: Path) -> Path:
    """Take every free block of the disk; delete the returned file to give them back."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 512):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue
    return filler


def store_on(disk: Path, tmp_path: Path) -> None:
    """start_omen puts the store at tmp_path/omen.db: make that name lead onto the disk.
    (SQLite follows the link, so its -wal and -shm files live there too.)"""
    (tmp_path / "omen.db").symlink_to(disk / "omen.db")


def test_a_full_disk_makes_ready_503_and_refuses_requests_until_it_has_room(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, small_disk: Path, tmp_path: Path
) -> None:
    store_on(small_disk, tmp_path)
    omen = omen_factory(base_config(upstreams))
    with omen.http() as http:
        assert chat(http).status_code == 200
        filler = fill(small_disk)
        served, refused = 1, None
        deadline = time.monotonic() + 30
        while refused is None:  # served until the writer meets the full disk, then refused
            assert time.monotonic() < deadline, "requests were never refused"
            answer = chat(http)
            if answer.status_code == 200:
                served += 1
            else:
                assert answer.status_code == 503, answer.text
                refused = answer
        assert "disk is full" in refused.json()["error"]["message"]
        ready = http.get("/ready")
        assert ready.status_code == 503
        assert "disk is full" in ready.json()["store"]
        text = http.get("/metrics").text
        assert metric(text, "omen_store_up") == 0
        assert metric(text, 'omen_store_write_errors_total{kind="batch"}') >= 1
        assert metric(text, "omen_store_queue_depth") >= 1  # the rows it could not write

        filler.unlink()
        wait_until(lambda: http.get("/ready").status_code == 200)
        assert chat(http).status_code == 200
        served += 1
    omen.stop()
    assert stored_requests(tmp_path / "omen.db") == served  # every answered request, once


def test_in_spill_mode_a_full_disk_is_served_spilled_and_replayed(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, small_disk: Path, tmp_path: Path
) -> None:
    store_on(small_disk, tmp_path)
    spill = tmp_path / "spill" / "omen-spill.jsonl"  # on another disk than the store
    spill.parent.mkdir()
    omen = omen_factory(
        base_config(upstreams),
        server_extra=f'on_store_failure = "spill"\nspill_path = "{spill}"',
    )
    with omen.http() as http:
        assert chat(http).status_code == 200
        filler = fill(small_disk)
        served = 1
        deadline = time.monotonic() + 30
        while http.get("/ready").status_code == 200:
            assert time.monotonic() < deadline, "the full disk never showed in /ready"
            assert chat(http).status_code == 200
            served += 1
        assert "disk is full" in http.get("/ready").json()["store"]
        for _ in range(10):  # still served, into the spill file
            assert chat(http).status_code == 200
            served += 1
        wait_until(lambda: metric(http.get("/metrics").text, "omen_store_spilled_total") >= 10)
        assert spill.stat().st_size > 0

        filler.unlink()
        wait_until(lambda: http.get("/ready").status_code == 200 and not spill.exists())
        text = http.get("/metrics").text
        assert metric(text, "omen_store_replayed_total") == metric(text, "omen_store_spilled_total")
    omen.stop()
    assert stored_requests(tmp_path / "omen.db") == served


# -- start-up on an unusable store ---------------------------------------------------------


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not SQLite\n" * 500)


def _newer_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


def _corrupt_pages(path: Path) -> None:
    writer = StoreWriter(path)
    writer.start()
    for n in range(2000):
        writer.record_request(_record(n))
    writer.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 30] = b"\xa5" * (4096 * 28)
    path.write_bytes(data)


def _record(n: int) -> RequestRecord:
    return RequestRecord(
        id=f"r{n}",
        ts=1_767_225_600.0 + n,
        container="app",
        key_id=None,
        kind="chat",
        requested_model="auto",
        model="llama3.1:8b",
        provider="ollama",
        endpoint="http://gpu-1",
        intent=None,
        strategy=None,
        stream=False,
        status=200,
        latency_ms=10.0,
        ttft_ms=None,
        prompt_tokens=10,
        completion_tokens=10,
    )


def _folder_is_a_file(path: Path) -> None:
    path.parent.write_text("")  # where the store's folder should be


def serve(tmp_path: Path, database: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "omen.toml"
    config.write_text(f'[server]\nbind = "127.0.0.1:{free_port()}"\ndatabase = "{database}"\n')
    return subprocess.run(
        [sys.executable, "-m", "omen", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("spoil", "database", "reason"),
    [
        (_not_a_database, "omen.db", "the file is not a database"),
        (_corrupt_pages, "omen.db", "the database file is corrupt"),
        (_newer_schema, "omen.db", "written by a newer omen"),
        (_folder_is_a_file, "data/omen.db", "is a file, not a folder"),
    ],
    ids=["not-a-database", "corrupt-pages", "newer-schema", "folder-is-a-file"],
)
def test_serve_on_an_unusable_store_says_why_in_one_line_and_exits_1(
    tmp_path: Path, spoil: Callable[[Path], None], database: str, reason: str
) -> None:
    spoil(tmp_path / database)
    result = serve(tmp_path, database)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("omen serve:")]
    assert line.startswith(f"omen serve: cannot open the store at {tmp_path / database}: ")
    assert reason in line


def test_serve_on_a_read_only_file_system_says_so_and_exits_1(
    tmp_path: Path, small_disk: Path
) -> None:
    writer = StoreWriter(small_disk / "omen.db")
    writer.start()
    writer.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, timeout=10)
    result = serve(tmp_path, str(small_disk / "omen.db"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "read-only file system" in result.stderr
