"""The README's screenshots show the console as its code is now.

Each SVG that scripts/screenshots.py writes records a hash of tui/'s sources; git timestamps
say nothing in a fresh clone, so the content decides.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REGENERATE = "run `.venv/bin/python scripts/screenshots.py` and commit screenshots/"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts/screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shots = load_script()


def readme_images() -> list[str]:
    """Local images the README shows, in Markdown or HTML."""
    text = README.read_text()
    links = re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", text)
    links += re.findall(r"<img\s[^>]*src=[\"']([^\"']+)", text)
    return [link for link in links if not re.match(r"[a-z]+:", link)]


def test_every_image_the_readme_links_exists() -> None:
    images = readme_images()
    assert images, "the README shows no screenshots"
    missing = [link for link in images if not (ROOT / link).is_file()]
    assert missing == [], f"the README links images that are not there: {missing}"


def test_the_readme_screenshots_were_made_from_the_console_code_as_it_is() -> None:
    current = shots.sources_hash(ROOT / "tui")
    stale = []
    for link in readme_images():
        image = ROOT / link
        if not link.startswith("screenshots/") or not image.is_file():
            continue
        made_from = shots.read_stamp(image)
        if made_from is None:
            svg = Path(link).with_suffix(".svg").as_posix()
            stale.append(f"{link} (no stamp: the script writes {svg}; link that)")
        elif made_from != current:
            stale.append(f"{link} (tui/ changed since it was made)")
    assert stale == [], f"stale screenshots: {stale}; {REGENERATE}"


def console(tmp_path: Path) -> Path:
    tui = tmp_path / "tui"
    (tui / "views").mkdir(parents=True)
    (tui / "app.py").write_text("APP = 1\n")
    (tui / "app.tcss").write_text("Screen { layout: vertical; }\n")
    (tui / "views" / "routing.py").write_text("ROUTING = 1\n")
    return tui


def test_the_hash_follows_the_console_sources_and_nothing_else(tmp_path: Path) -> None:
    tui = console(tmp_path)
    before = shots.sources_hash(tui)
    (tui / "__pycache__").mkdir()
    (tui / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0compiled")
    (tui / "notes.md").write_text("not code\n")
    assert shots.sources_hash(tui) == before
    (tui / "views" / "routing.py").write_text("ROUTING = 1\r\n")  # a CRLF checkout
    assert shots.sources_hash(tui) == before
    (tui / "app.tcss").write_text("Screen { layout: horizontal; }\n")
    after_style = shots.sources_hash(tui)
    assert after_style != before
    (tui / "views" / "routing.py").rename(tui / "views" / "route.py")
    assert shots.sources_hash(tui) not in (before, after_style)


def test_a_stamped_svg_reads_back_and_a_png_has_no_stamp(tmp_path: Path) -> None:
    digest = shots.sources_hash(console(tmp_path))
    svg = tmp_path / "1-overview.svg"
    svg.write_text(shots.stamp('<svg xmlns="http://www.w3.org/2000/svg"></svg>', digest))
    assert shots.read_stamp(svg) == digest
    svg.write_text(shots.stamp(svg.read_text(), "0" * 64))  # restamped, not stamped twice
    assert shots.read_stamp(svg) == "0" * 64 and svg.read_text().count("omen-console") == 1
    png = tmp_path / "1-overview.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert shots.read_stamp(png) is None
