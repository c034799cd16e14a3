"""3 Providers: every endpoint's health, latency, errors, in-flight and drain; `d` drains."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from omen_tui.format import HEALTH_STYLES, ago, millis, percent
from omen_tui.messages import DrainRequested
from omen_tui.model import Snapshot
from omen_tui.model.snapshot import EndpointStatus
from omen_tui.views.base import ConsoleView
from omen_tui.widgets.live_table import Column, LiveTable

COLUMNS = (
    Column("provider", "provider", 9),
    Column("endpoint", "endpoint", 12),
    Column("health", "health", 9),
    Column("p50", "p50", 6),
    Column("p95", "p95", 6),
    Column("errors", "err%", 5),
    Column("in_flight", "infl", 4),
    Column("drained", "drain", 5),
    Column("last_error", "last error", 60),
)


class ProvidersView(ConsoleView):
    ACTIONS = frozenset({"drain"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "drain", "Drain/undrain", tooltip="Stop (or resume) routing to it"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="providers")
        self._endpoints: dict[str, EndpointStatus] = {}
        self._now = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="providers-summary", classes="summary")
        yield LiveTable(COLUMNS, id="endpoints")
        yield Static(id="endpoint-card", classes="detail-line")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#endpoints", LiveTable)

    @property
    def selected(self) -> EndpointStatus | None:
        key = self.table.selected_key
        return self._endpoints.get(key) if key else None

    def apply(self, snapshot: Snapshot) -> None:
        data = snapshot.providers
        if data is None:
            return
        self._now = snapshot.now
        self._endpoints = {e.key: e for e in data.endpoints}
        self.table.sync({e.key: _cells(e) for e in data.endpoints})
        healthy = sum(1 for e in data.endpoints if e.health == "healthy")
        summary = Text(f"{healthy}/{len(data.endpoints)} endpoints healthy", style="bold")
        drained = sum(1 for e in data.endpoints if e.drained)
        if drained:
            summary.append(f"  {drained} drained", style="magenta")
        summary.append("  latency and errors: last 15 min of requests", style="dim")
        self.query_one("#providers-summary", Static).update(summary)
        self._show_card()

    def _show_card(self) -> None:
        self.query_one("#endpoint-card", Static).update(endpoint_card(self.selected, self._now))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_card()

    def action_drain(self) -> None:
        endpoint = self.selected
        if endpoint is None:
            self.notify("No endpoint selected", severity="warning")
            return
        self.post_message(
            DrainRequested(endpoint.provider, endpoint.endpoint, not endpoint.drained)
        )


def _cells(e: EndpointStatus) -> tuple[str | Text, ...]:
    return (
        e.provider,
        e.endpoint,
        Text(e.health, style=HEALTH_STYLES.get(e.health, "")),
        millis(e.p50_ms),
        millis(e.p95_ms),
        Text(percent(e.error_rate), style="red" if (e.error_rate or 0) >= 0.1 else ""),
        str(e.in_flight),
        Text("yes", style="magenta") if e.drained else Text("-", style="dim"),
        Text(e.last_error or "", style="red"),
    )


def endpoint_card(e: EndpointStatus | None, now: float) -> Text:
    if e is None:
        return Text("no endpoint selected", style="dim")
    text = Text(e.key, style="bold")
    if e.url:
        text.append(f"  {e.url}", style="dim")
    text.append(f"  probe {millis(e.probe_ms)}, checked {ago(e.checked_ts, now)}", style="dim")
    if e.latency_source:
        text.append(f"  p50/p95 from {e.latency_source}", style="dim")
    if e.sample:
        text.append(f" ({e.sample})", style="dim")
    text.append("\n")
    if e.drained:
        text.append("drained", style="magenta")
        if e.drain_reason:
            text.append(f": {e.drain_reason}")
        if e.drain_actor:
            text.append(f" (by {e.drain_actor}, {ago(e.drain_ts, now)})", style="dim")
        text.append("  ")
    if e.loaded_models:
        text.append("loaded: " + ", ".join(e.loaded_models) + "  ", style="dim")
    if e.last_error:
        text.append(f"last error: {e.last_error}", style="red")
    elif not e.drained and not e.loaded_models:
        text.append("no errors", style="dim")
    return text
