"""2 Routing: the live decision feed, newest first; Enter opens one, `r` replays it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from omen_store import RequestRow
from omen_tui.format import clock, count, millis, money, status_text
from omen_tui.messages import ReplayRequested, RequestOpened
from omen_tui.model import Filter, Snapshot
from omen_tui.model.poller import FEED_SIZE
from omen_tui.views.base import ConsoleView
from omen_tui.widgets.live_table import Column, LiveTable, OpenableTable

COLUMNS = (
    Column("time", "time", 8),
    Column("status", "st", 3),
    Column("container", "container", 10),
    Column("intent", "intent", 8),
    Column("route", "provider/model@endpoint", 26),
    Column("latency", "lat", 6),
    Column("tokens", "tok", 6),
    Column("cost", "cost", 7),
    Column("reason", "reason", 90),
)


class RoutingView(ConsoleView):
    ACTIONS = frozenset({"replay"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "replay", "Replay", tooltip="Re-send the selected request"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="routing")
        self._rows: dict[str, RequestRow] = {}
        self._cells: dict[str, tuple[str | Text, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="routing-summary", classes="summary")
        yield OpenableTable(COLUMNS, id="decisions")
        yield Static(id="decision-line", classes="detail-line")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#decisions", LiveTable)

    @property
    def selected(self) -> RequestRow | None:
        key = self.table.selected_key
        return self._rows.get(key) if key else None

    def apply(self, snapshot: Snapshot) -> None:
        data = snapshot.routing
        if data is None:
            return
        if not data.replace and not data.rows:
            return  # nothing new since the last poll
        if data.replace:
            self._rows = {}
        for row in data.rows:
            self._rows[row.id] = row
        if len(self._rows) > FEED_SIZE or not data.replace:
            newest = sorted(self._rows.values(), key=_order, reverse=True)[:FEED_SIZE]
            self._rows = {row.id: row for row in newest}
        self._show()

    def set_filter(self, filt: Filter) -> None:
        super().set_filter(filt)
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        rows = sorted(
            (row for row in self._rows.values() if _matches(self.filter, row)),
            key=_order,
            reverse=True,
        )
        # Stored decisions never change: their cells are built once.
        self._cells = {row.id: self._cells.get(row.id) or _cells(row) for row in rows}
        self.table.sync(self._cells)
        errors = sum(1 for row in rows if row.status >= 400)
        summary = Text(f"{len(rows)} decisions", style="bold")
        if errors:
            summary.append(f"  {errors} failed or refused", style="red")
        if rows:
            summary.append(f"  newest {clock(rows[0].ts)}", style="dim")
        summary.append("  enter: scores, attempts, body", style="dim")
        self.query_one("#routing-summary", Static).update(summary)
        self._show_line()

    def _show_line(self) -> None:
        self.query_one("#decision-line", Static).update(decision_line(self.selected))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_line()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        row = self.selected
        if row is not None:
            self.post_message(RequestOpened(row.id))

    def action_replay(self) -> None:
        row = self.selected
        if row is None:
            self.notify("No request selected", severity="warning")
            return
        self.post_message(ReplayRequested(row.id, row.provider, row.model))


def _order(row: RequestRow) -> tuple[float, int]:
    return (row.ts, row.rowid)


def _matches(filt: Filter, row: RequestRow) -> bool:
    return (
        filt.matches_container(row.container)
        and filt.matches_provider(row.provider)
        and filt.matches_text(
            row.id, row.intent, row.model, row.endpoint, row.reason, row.error, row.status
        )
    )


def route_of(row: RequestRow) -> str:
    if row.provider is None:
        return f"({row.requested_model})"
    route = f"{row.provider}/{row.model}"
    return f"{route}@{row.endpoint}" if row.endpoint else route


def _cells(row: RequestRow) -> tuple[str | Text, ...]:
    return (
        clock(row.ts),
        status_text(row.status),
        row.container,
        row.intent or "-",
        route_of(row),
        millis(row.latency_ms),
        count(row.prompt_tokens + row.completion_tokens),
        money(row.cost_usd),
        row.reason or (row.error or ""),
    )


def decision_line(row: RequestRow | None) -> Text:
    """The selected decision in two lines, for terminals too narrow for every column."""
    if row is None:
        return Text("no decision selected", style="dim")
    text = Text()
    text.append_text(status_text(row.status))
    text.append(f" {row.id}", style="bold")
    ttft = f" (ttft {millis(row.ttft_ms)})" if row.ttft_ms is not None else ""
    text.append(
        f"  {millis(row.latency_ms)}{ttft}  {count(row.prompt_tokens)} in /"
        f" {count(row.completion_tokens)} out  {money(row.cost_usd)}  "
    )
    text.append(route_of(row), style="bold")
    text.append("\n")
    if row.error:
        text.append(row.error, style="red")
        text.append("  ")
    text.append(row.reason, style="dim")
    return text
