"""ViewTabs: the numbered views, the active one highlighted (switch with 1-4)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

TITLES = {"overview": "Overview", "routing": "Routing", "providers": "Providers", "gpu": "GPU"}


class ViewTabs(Static):
    active: reactive[str] = reactive("overview")

    def render(self) -> Text:
        text = Text("omen ", style="bold")
        for number, (view, title) in enumerate(TITLES.items(), start=1):
            style = "reverse bold" if view == self.active else ""
            text.append(f" {number} {title} ", style=style)
        return text
