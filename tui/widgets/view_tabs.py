"""ViewTabs: the numbered views, the active one highlighted (switch with 1-4).

The tabs always show all four views: at narrow widths the brand goes first, then the
inactive titles shorten to their number, and the status on the right gives way before them.
"""

from __future__ import annotations

from rich.text import Text
from textual.events import Resize
from textual.reactive import reactive
from textual.widgets import Static

TITLES = {"overview": "Overview", "routing": "Routing", "providers": "Providers", "gpu": "GPU"}
BRAND = "omen "
MIN_STATUS = 12  # the header keeps room for the short daemon status (`✖ down 12:30`)


def render_tabs(active: str, *, brand: bool = True, titles: bool = True) -> Text:
    text = Text(BRAND if brand else "", style="bold")
    for number, (view, title) in enumerate(TITLES.items(), start=1):
        style = "reverse bold" if view == active else ""
        label = f" {number} {title} " if titles or view == active else f" {number} "
        text.append(label, style=style)
    return text


def tabs_for(width: int, active: str) -> Text:
    """The fullest tabs that leave `MIN_STATUS` cells of `width` for the status."""
    for brand, titles in ((True, True), (False, True), (False, False)):
        tabs = render_tabs(active, brand=brand, titles=titles)
        if tabs.cell_len + MIN_STATUS <= width:
            return tabs
    return tabs


class ViewTabs(Static):
    active: reactive[str] = reactive("overview")

    def render(self) -> Text:
        return tabs_for(self.app.size.width, self.active)

    def on_resize(self, event: Resize) -> None:
        # The terminal's width changed: the status beside the tabs re-fits to what is left.
        from omen_tui.widgets.daemon_status import DaemonStatus

        for status in self.screen.query(DaemonStatus):
            status.refit()
