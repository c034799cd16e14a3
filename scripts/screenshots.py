"""Regenerate screenshots/: every console view, a decision's detail and a replay comparison.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--seconds 8]

Starts `omen demo`'s daemon (simulated GPU boxes and clouds, live traffic) in a temporary
directory, lets traffic build up some history, then drives the real console headless at
100×30 and saves each screen as Textual's own SVG export: the console's cells, each run of
text placed at its column. The README links these SVGs.

No PNGs: converting the SVG is what glued words together in earlier screenshots ("daemon
up15:46:06", "alertsno budget alerts"). Textual writes a text run's leading spaces as
no-break spaces; rsvg-convert and cairosvg strip them and stretch the rest over the run's
cells, and they fall back to a proportional font when Fira Code is not installed.

Each SVG records a hash of the console's sources (tui/**/*.py, tui/**/*.tcss);
tests/unit/test_screenshots.py fails once tui/ no longer matches it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (100, 30)
SHOTS = (
    "1-overview",
    "2-routing",
    "3-providers",
    "4-gpu",
    "5-decision-detail",
    "6-replay-comparison",
)
STAMP = re.compile(r"<!-- omen-console-sources sha256:([0-9a-f]{64}) -->")


def sources_hash(tui: Path = ROOT / "tui") -> str:
    """What the screenshots show is decided by these files: their paths and contents, hashed.

    Line endings are normalised, so a checkout with CRLF conversion hashes the same.
    """
    digest = hashlib.sha256()
    sources = [*tui.rglob("*.py"), *tui.rglob("*.tcss")]
    for path in sorted(sources, key=lambda p: p.relative_to(tui).as_posix()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(tui).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def stamp(svg: str, digest: str) -> str:
    """The SVG with the console sources' hash in a comment before its root element."""
    return f"<!-- omen-console-sources sha256:{digest} -->\n{STAMP.sub('', svg).lstrip()}"


def read_stamp(image: Path) -> str | None:
    if image.suffix != ".svg":
        return None  # only the SVGs this script writes carry a stamp
    found = STAMP.search(image.read_text(encoding="utf-8", errors="replace")[:500])
    return found.group(1) if found else None


async def shoot(out: Path, settings: dict[str, str], digest: str) -> list[Path]:
    # Imported here so the tests can read sources_hash and read_stamp without Textual.
    from textual.pilot import Pilot

    from omen_tui.app import OmenConsole
    from omen_tui.widgets.live_table import LiveTable

    app = OmenConsole(
        Path(settings["database"]), settings["url"], settings["admin_key"], poll_interval=0.5
    )
    saved: list[Path] = []

    async def settle(pilot: Pilot[None], seconds: float = 0.6) -> None:
        """Let the poll that the last key started land before the shot."""
        deadline = time.monotonic() + 10
        await pilot.pause(seconds)
        while app.is_polling and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.1)

    def save(name: str) -> None:
        svg = out / f"{name}.svg"
        svg.write_text(stamp(app.export_screenshot(title="Omen console"), digest))
        saved.append(svg)

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 1.5)
        for shot in SHOTS[:4]:
            await pilot.press(shot[0])
            await settle(pilot, 1.0)
            save(shot)
        await pilot.press("2")
        await settle(pilot)
        table = app.query_one("#decisions", LiveTable)
        table.move_cursor(row=min(2, max(0, table.row_count - 1)))
        await pilot.press("enter")
        await settle(pilot)
        save(SHOTS[4])
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("down", "enter")  # re-route it
        await settle(pilot, 2.0)
        save(SHOTS[5])
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--seconds", type=float, default=8.0, help="traffic before the shots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import asyncio

    from omen.demo.run import start_demo

    digest = sources_hash()
    with tempfile.TemporaryDirectory(prefix="omen-shots-") as tmp:
        servers, traffic, settings = start_demo(Path(tmp), rate=6.0)
        try:
            time.sleep(args.seconds)
            saved = asyncio.run(shoot(out, settings, digest))
        finally:
            traffic.stop()
            for server in reversed(servers):
                server.stop()
    if sources_hash() != digest:
        sys.exit("tui/ changed while the screenshots were taken: run this again")
    for name in SHOTS:  # the converted PNGs of earlier versions would only mislead
        (out / f"{name}.png").unlink(missing_ok=True)
    for path in saved:
        print(path)


if __name__ == "__main__":
    main()
