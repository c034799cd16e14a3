"""What a wheel install needs beyond Python files is declared as package data.

An editable install reads files from the checkout, so a missing declaration only shows after
`pip install .` (the console crashed without its stylesheet): check every non-Python file.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_data_file_of_the_packages_is_declared_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared: dict[str, list[str]] = config.get("package-data", {})
    missing = []
    for package in ("omen", "omen_store", "omen_tui"):
        for path in (ROOT / package).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).as_posix()
            if not any(fnmatch.fnmatch(relative, glob) for glob in declared.get(package, [])):
                missing.append(f"{package}/{relative}")
    assert missing == []
