"""Regenerate screenshots/: every console view, a decision's detail and a replay comparison.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--seconds 8]

Starts `omen demo`'s daemon (simulated GPU boxes and clouds, live traffic) in a temporary
directory, lets traffic build up some history, then drives the real console headless at
100×30 and saves each screen as SVG, converted to PNG with rsvg-convert (Debian: librsvg2-bin)
or cairosvg when either is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual.pilot import Pilot

from omen.demo.run import start_demo
from omen_tui.app import OmenConsole
from omen_tui.widgets.live_table import LiveTable

SIZE = (100, 30)


async def settle(pilot: Pilot[None], seconds: float = 0.6) -> None:
    app = pilot.app
    assert isinstance(app, OmenConsole)
    deadline = time.monotonic() + 10
    await pilot.pause(seconds)
    while app.is_polling and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.pause(0.1)


def to_png(svg: Path) -> Path:
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True)
    else:
        try:
            import cairosvg  # type: ignore[import-not-found]
        except ImportError:
            print(f"  (no rsvg-convert or cairosvg: kept {svg.name} only)")
            return svg
        cairosvg.svg2png(url=str(svg), write_to=str(png))
    return png


async def shoot(out: Path, settings: dict[str, str]) -> list[Path]:
    app = OmenConsole(
        Path(settings["database"]), settings["url"], settings["admin_key"], poll_interval=0.5
    )
    saved: list[Path] = []

    def save(name: str) -> None:
        svg = out / f"{name}.svg"
        app.save_screenshot(filename=svg.name, path=str(out))
        saved.append(to_png(svg))

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 1.5)
        for number, name in (("1", "overview"), ("2", "routing"), ("3", "providers"), ("4", "gpu")):
            await pilot.press(number)
            await settle(pilot, 1.0)
            save(f"{number}-{name}")
        await pilot.press("2")
        await settle(pilot)
        table = app.query_one("#decisions", LiveTable)
        table.move_cursor(row=min(2, max(0, table.row_count - 1)))
        await pilot.press("enter")
        await settle(pilot)
        save("5-decision-detail")
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("down", "enter")  # re-route it
        await settle(pilot, 2.0)
        save("6-replay-comparison")
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "screenshots")
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="traffic before the shots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="omen-shots-") as tmp:
        servers, traffic, settings = start_demo(Path(tmp), rate=6.0)
        try:
            time.sleep(args.seconds)
            saved = asyncio.run(shoot(out, settings))
        finally:
            traffic.stop()
            for server in reversed(servers):
                server.stop()
    for svg in out.glob("*.svg"):
        if svg.with_suffix(".png").exists():
            svg.unlink()
    for path in saved:
        print(path)


if __name__ == "__main__":
    main()
