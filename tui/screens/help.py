"""HelpScreen: every key, by view, and what the header says."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("1 2 3 4", "switch view: Overview, Routing, Providers, GPU"),
    ("↑ ↓ j k", "move the selection; it stays on its row as new rows arrive"),
    ("pgup pgdn", "a page up / down; ← → scroll a table wider than the screen"),
    ("g G", "first row (then follow new rows) / last row; home end alike"),
    ("enter", "Routing: open the decision (scores, attempts, body)"),
    ("enter", "Providers, in a fleet: each instance's view of the endpoint"),
    ("d", "Providers/GPU: drain or undrain the endpoint (asks first)"),
    ("b", "Overview: change the container's daily/weekly/monthly budget"),
    ("r", "Routing: replay it (same route, re-route, or another model)"),
    ("+ -", "Replay result: the replay was better / worse (feedback 1 / 0)"),
    ("L", "Routing: what routing learnt, per model (read from the store)"),
    ("w", "Overview: what-if — re-route the period under another strategy"),
    ("A", "audit trail: who (a key, or an operator and role) did what"),
    ("/", "filter by text, container, provider or instance (i:NAME)"),
    ("p", "pause / resume polling"),
    ("ctrl+p  :", "command palette"),
    ("esc", "back / close; on a view, clear the filter"),
    ("?", "this help"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, *, hidden: str | None, url: str) -> None:
        """`hidden`: why the actions are hidden (`--readonly`, a viewer role), or None."""
        super().__init__(classes="modal")
        self.hidden = hidden
        self.url = url

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static("Omen console — keys", classes="dialog-title")
            yield Static(self._table())
            yield Static(self._notes(), classes="dialog-text")
            yield Static("esc: close", classes="dialog-hint")

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, what in KEYS:
            if self.hidden and key in ("d", "b", "r", "+ -"):
                what += f" — hidden: {self.hidden}"
            table.add_row(key, what)
        return table

    def _notes(self) -> Text:
        where = self.url
        if "," in where:  # a fleet's daemons: any live one acts on the shared store
            where = f"the first that answers of {where}"
        return Text(
            f"Data comes from the store (works with the daemon down); actions go to the "
            f"daemon's admin API at {where} and are audited. Header: ● daemon up (in a "
            "fleet, `on a`: the instance acted through), ✖ unreachable (history only, "
            "actions off), ⏸ paused.",
            style="dim",
        )

    def action_close(self) -> None:
        self.dismiss(None)
