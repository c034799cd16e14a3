"""Overview, Providers, GPU and the header as an operator over SSH sees them: at 80×24 and at
160×48, over real SQLite stores and a canned admin API, reading what is on the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from omen_store import GpuSample, HealthSample, RequestRecord, StoreWriter
from omen_tui.app import OmenConsole
from omen_tui.model import Filter
from omen_tui.screens.confirm_drain import ConfirmDrain
from omen_tui.widgets.live_table import LiveTable
from tests.tui.conftest import ConsoleFactory, press, settle
from tests.tui.fake_admin import CONTAINERS, ENDPOINTS, FakeAdmin
from tests.tui.seed import NOW

NARROW, WIDE = (80, 24), (160, 48)
GPU_A = "127.0.0.1:18401"  # two Ollama boxes on one host, named by host:port (the default)
GPU_B = "127.0.0.1:18402"


def screen(app: OmenConsole) -> list[str]:
    """The terminal's lines as drawn: what fits on screen, nothing a table holds off it."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def line_with(app: OmenConsole, needle: str) -> str:
    if needle.startswith("\n"):  # at the start of the line
        lines = [line for line in screen(app) if line.startswith(needle[1:])]
    else:
        lines = [line for line in screen(app) if needle in line]
    assert lines, f"{needle!r} not on screen:\n" + "\n".join(screen(app))
    return lines[0]


def row_of(app: OmenConsole, name: str) -> str:
    """The table row that starts with `name` (a card beside the table may share its line)."""
    return line_with(app, "\n " + name + " ")


def on_screen(app: OmenConsole, needle: str) -> bool:
    return any(needle in line for line in screen(app))


def record(n: int, ts: float, **fields: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "id": f"req_{n}",
        "ts": ts,
        "container": "app",
        "key_id": "key_app",
        "kind": "chat",
        "requested_model": "auto",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "endpoint": "api.openai.com",
        "intent": "general",
        "strategy": "balanced",
        "stream": False,
        "status": 200,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    }
    return RequestRecord(**(base | fields))


def write_store(path: Path, *, requests: list[RequestRecord] | None = None, **samples: Any) -> Path:
    writer = StoreWriter(path)
    writer.start()
    for request in requests or []:
        writer.record_request(request)
    for sample in samples.get("health", []):
        writer.record_health(sample)
    for sample in samples.get("gpu", []):
        writer.record_gpu(sample)
    assert writer.flush()
    writer.close()
    return path


class TwoBoxes(FakeAdmin):
    """The admin API of a daemon with two unnamed Ollama endpoints on one host."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.up and self.admin and request.url.path == "/admin/endpoints":
            self.calls.append((request.method, request.url.path, {}))
            endpoints = [
                ENDPOINTS[0] | {"endpoint": GPU_A, "url": f"http://{GPU_A}", "drained": False},
                ENDPOINTS[0] | {"endpoint": GPU_B, "url": f"http://{GPU_B}", "in_flight": 0},
            ]
            return httpx.Response(200, content=orjson.dumps({"endpoints": endpoints}))
        return super().handle(request)


class Cheap(FakeAdmin):
    """A daemon whose containers spent fractions of a cent."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.up and request.url.path == "/admin/containers":
            cheap = CONTAINERS[1] | {
                "spend": {"daily": 0.00008, "weekly": 0.00024, "monthly": 0.0031}
            }
            return httpx.Response(200, content=orjson.dumps({"containers": [cheap]}))
        return super().handle(request)


def make(database: Path, fake: FakeAdmin) -> OmenConsole:
    client = fake.client()
    return OmenConsole(
        database, client.base_url, None, poll_interval=3600, client=client, clock=lambda: NOW
    )


# -- providers ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [NARROW, WIDE])
async def test_two_ollamas_on_one_host_are_told_apart_and_d_drains_the_selected_one(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    database = write_store(
        tmp_path / "omen.db",
        health=[HealthSample(NOW - 30, "ollama", name, True, 9.0, None) for name in (GPU_A, GPU_B)],
    )
    fake = TwoBoxes()
    app = make(database, fake)
    async with app.run_test(size=size) as pilot:
        await press(pilot, "3")
        rows = [line_with(app, f"ollama/{GPU_A}"), line_with(app, f"ollama/{GPU_B}")]
        assert rows[0] != rows[1] and all("healthy" in row for row in rows)
        await pilot.press("down")
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmDrain)
        await press(pilot, "enter")
    drains = [body for method, path, body in fake.calls if path.endswith("/drain")]
    assert drains == [{"provider": "ollama", "endpoint": GPU_B}]


async def test_config_names_show_with_their_host_and_port(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await press(pilot, "3")
        assert "ollama/gpu1 10.0.0.11:11434" in line_with(app, "ollama/gpu1")
        assert "ollama/gpu2 10.0.0.12:11434" in line_with(app, "ollama/gpu2")
        assert on_screen(app, "4 GPU")


async def test_providers_say_where_latency_comes_from(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await press(pilot, "3")
        summary = line_with(app, "healthy")
        assert "last 15 min of requests" not in summary
        # gpu1 served requests in the last 15 minutes; gpu2 is drained: only its probes.
        assert "requests 15 min" in summary and "~ probes 1h" in summary
        assert "~" not in line_with(app, "ollama/gpu1") and "~" in line_with(app, "ollama/gpu2")
        assert "p50/p95 of 12 requests" in line_with(app, "probe 9ms")
        await pilot.press("down")
        await settle(pilot)
        assert "ollama/gpu2 10.0.0.12:11434  probe" in line_with(app, "~p50/p95 of 50 probes")


@pytest.mark.parametrize("size", [NARROW, WIDE])
async def test_at_each_width_nothing_important_is_cut(
    console: ConsoleFactory, size: tuple[int, int]
) -> None:
    app, _ = console()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for name in ("app", "batch", "research", "support"):
            assert row_of(app, name)
        assert ("week" in line_with(app, "sess")) == (size == WIDE)
        await press(pilot, "3")
        assert ("connection refused" in line_with(app, "ollama/gpu2 ")) == (size == WIDE)
        await press(pilot, "4")
        models = line_with(app, "gpu1 ")
        assert ("llama3.1:8b, deepseek-coder:6.7b" in models) == (size == WIDE)
        for table in app.query(LiveTable):
            if table.display and table.size.width:
                assert table.virtual_size.width <= size[0]


# -- GPU ----------------------------------------------------------------------------------


async def test_gpu_gauges_without_figures_say_why_not_no_limit(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    write_store(
        seeded_db,
        gpu=[GpuSample(NOW - 5, "ollama", "gpu1", [], 3 * 2**30, None, None, 1)],
    )
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await press(pilot, "4")
        row = line_with(app, "gpu1 ")
        assert "no limit" not in row
        assert "no metrics" in row and "3.0G" in row and "total ?" in row
        assert "no GPU metrics source" in line_with(app, "ollama/gpu1  sampled")
        assert "21%" in line_with(app, "gpu2 ")  # figures where there are some


# -- overview -----------------------------------------------------------------------------


async def test_spend_under_a_cent_is_shown_not_zero(tmp_path: Path) -> None:
    database = write_store(
        tmp_path / "omen.db",
        requests=[record(n, NOW - 60 * n, container="batch", cost_usd=0.00008) for n in range(3)],
    )
    app = make(database, Cheap())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        row = row_of(app, "batch")
        assert "$0.00008" in row and "$0.0031" not in row  # today; month is not shown at 80
        assert "$0.0002" in row  # burn: three of them in the last hour
        assert " $0 " not in row
        assert "today $0.00008" in line_with(app, "today $")


async def test_burn_and_forecast_follow_the_last_hour_not_the_day(tmp_path: Path) -> None:
    # $0.50 at 01:00, then $0.01 a minute for the last ten minutes (12:20-12:30).
    requests = [record(0, NOW - 11.5 * 3600, cost_usd=0.50)]
    requests += [record(n, NOW - 60 * n + 30, cost_usd=0.01) for n in range(1, 11)]
    database = write_store(tmp_path / "omen.db", requests=requests)
    app = make(database, FakeAdmin(up=False))
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        card = "\n".join(screen(app))
        # The last hour: $0.10/h. The day's average would say $0.60 / 12.5 h = $0.05/h.
        assert "burn $0.10/h (1h)" in card
        spent, hours_left = 0.60, 11.5
        assert f"fcst ${spent + 0.10 * hours_left:.2f}" in line_with(app, "today      $")
        assert "$0.10" in row_of(app, "app")


async def test_each_container_shows_sessions_and_cache_at_80_and_160(
    console: ConsoleFactory,
) -> None:
    for size in (NARROW, WIDE):
        app, _ = console()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            header = row_of(app, "container")
            assert all(label in header for label in ("sess", "hit", "saved"))
            app_row = row_of(app, "app")
            # The seed: app's OpenAI requests carry 12 sessions today; 23% of input cached.
            assert " 12 " in app_row and "23%" in app_row and "$0.01" in app_row
            assert "$0.0054" in row_of(app, "batch")  # savings under a cent
            assert "12 sessions" in "\n".join(screen(app))
            assert "cache today 23% hit · saved $0.01" in "\n".join(screen(app))


# -- the header ---------------------------------------------------------------------------


@pytest.mark.parametrize("up", [True, False])
async def test_filter_and_pause_leave_every_tab_on_screen_at_80(
    console: ConsoleFactory, up: bool
) -> None:
    app, _ = console(up=up)
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        app._set_filter(Filter(container="research", provider="ollama", text="deepseek"))
        await press(pilot, "p")
        top = screen(app)[0]
        for tab in ("1 Overview", "2 Routing", "3 Providers", "4 GPU"):
            assert tab in top
        assert "⏸" in top and "/container=" in top
        assert ("● up" if up else "✖ down") in top
    app, _ = console(up=up)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app._set_filter(Filter(container="research", provider="ollama"))
        await press(pilot, "p")
        top = screen(app)[0]
        assert "/container=research provider=ollama ⏸ paused" in top
        assert ("● daemon up 12:30:00" if up else "✖ daemon unreachable") in top


# -- daemon down --------------------------------------------------------------------------


async def test_with_the_daemon_down_limits_and_health_are_unknown_not_stale(
    console: ConsoleFactory,
) -> None:
    app, _ = console(up=False)
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        lines = "\n".join(screen(app))
        assert "limit ?" not in lines
        assert "unknown" in row_of(app, "batch")  # its configured budget is the daemon's
        assert "3%" in row_of(app, "app")  # a persisted override is known: its bar shows
        assert "daemon down: limits unknown" in lines
        await press(pilot, "3")
        summary = screen(app)[1]
        assert "daemon down: health unknown (last probe 12:29:00)" in summary
        assert "healthy" not in summary.replace("health unknown", "")
        assert "unknown" in line_with(app, "ollama/gpu1")
        assert "drained" in line_with(app, "ollama/gpu2")  # persisted operator state
        assert "last probe 1m ago: healthy (daemon down)" in line_with(app, "last probe 1m")


async def test_the_header_says_when_the_daemon_was_last_seen(console: ConsoleFactory) -> None:
    app, fake = console()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        fake.up = False
        app.poll_now()
        await settle(pilot)
        assert "✖ daemon unreachable, seen 12:30:00" in screen(app)[0]
