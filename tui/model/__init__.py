"""The console's data: what it reads from the store and the daemon, free of any Textual import."""

from omen_tui.model.filters import Filter
from omen_tui.model.poller import VIEWS, Poller
from omen_tui.model.snapshot import DaemonState, Snapshot

__all__ = ["VIEWS", "DaemonState", "Filter", "Poller", "Snapshot"]
