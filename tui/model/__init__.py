"""The console's data: what it reads from the store and the daemon, free of any Textual import."""

from tui.model.filters import Filter
from tui.model.poller import VIEWS, Poller
from tui.model.snapshot import DaemonState, Snapshot

__all__ = ["VIEWS", "DaemonState", "Filter", "Poller", "Snapshot"]
