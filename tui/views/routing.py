"""2 Routing: the live decision feed, newest first; Enter opens one, `r` replays it.

The columns are laid out for the terminal's width: the reason — what the console is for —
takes what the others leave, middle-elided; at 80 columns latency, tokens, session and cache
step aside (the strip under the table shows them, and the whole reason, for the selected row).
On a fleet's store the instance that served each request gets a column where the reason can
spare it, and is always in the strip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.console import Console
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from omen_store import RequestRow
from omen_tui.format import clock, count, elide, millis, money, status_text
from omen_tui.messages import ReplayRequested, RequestOpened
from omen_tui.model import Filter, Snapshot
from omen_tui.model.poller import FEED_SIZE
from omen_tui.views.base import ConsoleView
from omen_tui.widgets.live_table import Column, LiveTable, OpenableTable

REASON_WANTED = 40  # the reason column's width before optional columns step aside
REASON_MIN = 20  # ... and before the route column is narrowed
ROUTE_MIN = 14
CAPS = {"container": 16, "intent": 14, "route": 44, "instance": 12}  # longer: middle-elided
OPTIONAL = ("cache", "session", "tokens", "latency")  # the order they step aside in
STRIP_LINES = 3  # lines of error and reason under the facts line (app.tcss: height 4)


@dataclass(frozen=True, slots=True)
class Layout:
    """The routing table's columns at one width; `endpoint`: whether routes carry it."""

    columns: tuple[Column, ...]
    endpoint: bool

    def width(self, key: str) -> int:
        for column in self.columns:
            if column.key == key:
                return column.width - (0 if column.key == "reason" else 1)  # less the gap
        return 0


def layout(width: int, widest: dict[str, int], *, fleet: bool = False) -> Layout:
    """Columns that fill `width` cells exactly (each but the last has a one-cell gap).

    `widest` holds the longest value seen per column (route: with its endpoint, `model`:
    without), so fixed words such as intent names are never cut. The instance column, where
    requests name one, steps aside first, but in a `fleet` (several instances) last, after
    the endpoint in the route.
    """
    wanted = {
        "time": 8,
        "status": 3,
        "instance": max(8, min(widest.get("instance", 0), CAPS["instance"])),
        "container": max(9, min(widest.get("container", 0), CAPS["container"])),
        "intent": max(6, min(widest.get("intent", 0), CAPS["intent"])),
        "route": max(ROUTE_MIN, min(widest.get("route", 0), CAPS["route"])),
        "latency": 5,
        "tokens": 5,
        "cost": max(4, widest.get("cost", 0)),
        "session": max(7, min(widest.get("session", 0), 12)),
        "cache": 9,
    }
    # Session, cache and instance columns only once some request had one.
    optional = (*OPTIONAL, "instance") if fleet else ("instance", *OPTIONAL)
    shown = [
        key for key in wanted if key not in ("session", "cache", "instance") or widest.get(key)
    ]

    def left() -> int:  # the reason's share
        return width - sum(wanted[key] + 1 for key in shown)

    for key in optional:
        if left() >= REASON_WANTED:
            break
        if key in shown:
            shown.remove(key)
    endpoint = left() >= REASON_WANTED
    if fleet and widest.get("instance") and "instance" not in shown:
        # In a fleet the instance tells more than the endpoint in the route: trade the one
        # for the other where the reason keeps its room.
        model = max(ROUTE_MIN, min(widest.get("model", 0), CAPS["route"]))
        if left() - (wanted["instance"] + 1) + (wanted["route"] - model) >= REASON_WANTED:
            shown = [key for key in wanted if key in shown or key == "instance"]
            endpoint = False
    if not endpoint:
        route = max(ROUTE_MIN, min(widest.get("model", 0), CAPS["route"]))
        wanted["route"] = max(ROUTE_MIN, min(route, wanted["route"] + left() - REASON_MIN))
    labels = {
        "time": "time",
        "status": "st",
        "instance": "instance",
        "container": "container",
        "intent": "intent",
        "route": "provider/model@endpoint" if endpoint else "provider/model",
        "latency": "lat",
        "tokens": "tok",
        "cost": "cost",
        "session": "session",
        "cache": "cache r/w",
    }
    columns = [
        Column(key, elide(labels[key], wanted[key]), wanted[key] + 1)
        for key in wanted
        if key in shown
    ]
    columns.append(Column("reason", "reason", max(left(), 6)))
    return Layout(tuple(columns), endpoint)


class RoutingView(ConsoleView):
    ACTIONS = frozenset({"replay"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "replay", "Replay", tooltip="Re-send the selected request"),
        Binding("L", "app.learnt", "Learnt", tooltip="What routing learnt from outcomes"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="routing")
        self._rows: dict[str, RequestRow] = {}
        self._cells: dict[str, tuple[str | Text, ...]] = {}
        self._widest: dict[str, int] = {}
        self._instances: set[str] = set()  # every instance name seen (the store's, the rows')
        self._layout = layout(80, {})

    def compose(self) -> ComposeResult:
        yield Static(id="routing-summary", classes="summary")
        yield OpenableTable(self._layout.columns, id="decisions", cell_padding=0)
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
        self._instances |= data.instances
        for row in data.rows:
            self._rows[row.id] = row
            self._measure(row)
        if len(self._rows) > FEED_SIZE or not data.replace:
            newest = sorted(self._rows.values(), key=_order, reverse=True)[:FEED_SIZE]
            self._rows = {row.id: row for row in newest}
        self._show()

    def set_filter(self, filt: Filter) -> None:
        super().set_filter(filt)
        if self.is_mounted:
            self.table.following = True  # a new question: its newest answer first
            self._show()

    def on_resize(self, event: events.Resize) -> None:
        if self._rows:
            self._show()

    def _measure(self, row: RequestRow) -> None:
        """Widen the running maxima the layout reads (they never shrink: no column jitter)."""
        widest = self._widest
        self._instances.add(row.instance)
        for key, value in (
            ("container", row.container),
            ("intent", row.intent or "-"),
            ("route", route_of(row)),
            ("model", route_of(row, endpoint=False)),
            ("cost", money(row.cost_usd)),
            ("session", row.session or ""),
            ("cache", cache_of(row)),
            ("instance", row.instance),
        ):
            if len(value) > widest.get(key, 0):
                widest[key] = len(value)

    def _table_width(self) -> int:
        width = self.size.width or self.app.size.width
        return max(40, width - 2)  # the table's left padding and its scrollbar gutter

    @property
    def fleet(self) -> bool:
        """Requests come from several instances, and the filter does not name one."""
        return len(self._instances - {""}) > 1 and not self.filter.instance

    def _show(self) -> None:
        table = self.table
        fitted = layout(self._table_width(), self._widest, fleet=self.fleet)
        if fitted != self._layout:
            self._layout = fitted
            self._cells = {}
            table.set_columns(fitted.columns)
        rows = sorted(
            (row for row in self._rows.values() if _matches(self.filter, row)),
            key=_order,
            reverse=True,
        )
        # Stored decisions never change: their cells are built once per layout.
        self._cells = {row.id: self._cells.get(row.id) or _cells(row, fitted) for row in rows}
        table.sync(self._cells)
        errors = sum(1 for row in rows if row.status >= 400)
        summary = Text()
        summary.append(f"{len(rows)} decisions", style="bold")
        if errors:
            summary.append(f"  {errors} failed or refused", style="red")
        if rows:
            summary.append(f"  newest {clock(rows[0].ts)}", style="dim")
        summary.append("  enter: scores, attempts, body", style="dim")
        self.query_one("#routing-summary", Static).update(summary)
        self._show_line()

    def _show_line(self) -> None:
        strip = self.query_one("#decision-line", Static)
        width = max(20, strip.size.width or self.app.size.width - 2)
        strip.update(decision_line(self.selected, width, self.app.console, instance=self.fleet))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_line()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Open the row Enter was pressed on, by its key: rows arriving meanwhile re-sort the
        table, so its index may already name another request."""
        event.stop()
        key = event.row_key.value
        if key is not None:
            self.post_message(RequestOpened(str(key)))

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
        and filt.matches_instance(row.instance)
        and filt.matches_text(
            row.id,
            row.intent,
            row.model,
            row.endpoint,
            row.reason,
            row.error,
            row.status,
            row.session,
        )
    )


def route_of(row: RequestRow, *, endpoint: bool = True) -> str:
    if row.provider is None:
        return f"({row.requested_model})"
    route = f"{row.provider}/{row.model}"
    return f"{route}@{row.endpoint}" if row.endpoint and endpoint else route


def cache_of(row: RequestRow) -> str:
    """`2.9k/0`: prompt tokens read from / written to the provider's cache; '' if neither."""
    if not row.cached_tokens and not row.cache_write_tokens:
        return ""
    return f"{count(row.cached_tokens)}/{count(row.cache_write_tokens)}"


def _cells(row: RequestRow, fitted: Layout) -> tuple[str | Text, ...]:
    values: dict[str, str | Text] = {
        "time": clock(row.ts),
        "status": status_text(row.status),
        "instance": row.instance,
        "container": row.container,
        "intent": row.intent or "-",
        "route": route_of(row, endpoint=fitted.endpoint),
        "latency": millis(row.latency_ms),
        "tokens": count(row.prompt_tokens + row.completion_tokens),
        "cost": money(row.cost_usd),
        "session": row.session or "",
        "cache": cache_of(row),
        "reason": row.reason or (row.error or ""),
    }
    return tuple(
        elide(value, fitted.width(column.key)) if isinstance(value, str) else value
        for column in fitted.columns
        for value in (values[column.key],)
    )


def decision_line(
    row: RequestRow | None, width: int, console: Console, *, instance: bool = False
) -> Text:
    """The selected decision under the table: its facts on one line, then its error and its
    whole reason on three (middle-elided only past them), at any terminal width. With
    `instance` (a fleet), the instance that served it follows the route."""
    if row is None:
        return Text("no decision selected", style="dim")
    facts = [
        Text.assemble(status_text(row.status), (f" {row.id}", "bold")),
        Text(route_of(row), style="bold"),
    ]
    if instance and row.instance:
        facts.append(Text.assemble(("on ", "dim"), elide(row.instance, 16)))
    facts += [
        Text(money(row.cost_usd)),
        Text(millis(row.latency_ms) + (f" (ttft {millis(row.ttft_ms)})" if row.ttft_ms else "")),
        Text(f"{count(row.prompt_tokens)} in / {count(row.completion_tokens)} out"),
    ]
    if row.session:
        facts.append(Text.assemble(("session ", "dim"), elide(row.session, 16)))
    if cache_of(row):
        facts.append(Text.assemble(("cache ", "dim"), cache_of(row), (" r/w", "dim")))
    text = Text()
    for fact in facts:
        gap = 2 if text else 0
        if text.cell_len + gap + fact.cell_len > width:
            if len(text) > len(facts[0]):
                continue  # a later, shorter fact may still fit
            fact = Text(elide(fact.plain, width - text.cell_len - gap), style=fact.style)
        text.append("  " if gap else "")
        text.append_text(fact)
    return Text("\n").join([text, _error_and_reason(row, width, console)])


def _error_and_reason(row: RequestRow, width: int, console: Console) -> Text:
    body = Text()
    if row.error:
        body.append(row.error, style="red")
        body.append("  ")
    body.append(row.reason)
    lines = body.wrap(console, width)
    room = width * STRIP_LINES
    while len(lines) > STRIP_LINES and room > 1:
        room -= max(1, width // 8)
        cut = len(body.plain) - room + 1  # characters taken out of the middle
        head = (len(body.plain) - cut) // 2 + (len(body.plain) - cut) % 2
        short = body[:head]
        short.append("…")
        short.append_text(body[head + cut :])
        lines = short.wrap(console, width)
    return Text("\n").join(lines)
