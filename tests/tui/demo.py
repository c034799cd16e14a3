"""Look at the console over the seeded store by hand: `python -m tests.tui.demo [--down]`.

The clock is frozen at the seed's NOW and the daemon is the canned FakeAdmin, exactly as the
snapshot tests see it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from omen_tui.app import OmenConsole
from tests.tui.fake_admin import FakeAdmin
from tests.tui.seed import NOW, seed_store


def main() -> None:
    down = "--down" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        database = seed_store(Path(tmp) / "omen.db")
        client = FakeAdmin(up=not down).client()
        app = OmenConsole(database, client.base_url, None, client=client, clock=lambda: NOW)
        app.run()


if __name__ == "__main__":
    main()
