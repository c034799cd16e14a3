"""1 Overview: every container's spend against its budgets, quotas, burn and forecast, alerts,
its agent sessions today and its prompt-cache hit ratio and savings.

The table fits the terminal: the container name takes the room left, and week and month
(also on the card) show only where they fit.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import DataTable, Sparkline, Static

from omen_tui.format import LEVEL_STYLES, count, elide, money, percent
from omen_tui.messages import BudgetRequested
from omen_tui.model import Snapshot
from omen_tui.model.budget import ContainerStatus
from omen_tui.model.layout import Spec, fit
from omen_tui.model.snapshot import OverviewData
from omen_tui.views.base import ConsoleView
from omen_tui.views.providers import fitted, pick
from omen_tui.widgets.alerts_list import AlertsList
from omen_tui.widgets.container_card import ContainerCard, gauge
from omen_tui.widgets.live_table import Column, LiveTable

DAY_BAR = 7
COLUMNS = (
    Column("container", "container", 12),
    Column("today", "today", 7),
    Column("budget", "day budget", DAY_BAR + 5),
    Column("week", "week", 7),
    Column("month", "month", 8),
    Column("burn", "burn/h", 7),  # over the last hour
    Column("sessions", "sess", 4),  # distinct agent sessions today
    Column("cache", "hit", 4),  # today's prompt-cache hit ratio
    Column("saved", "saved", 7),  # what today's cache reads saved
    Column("status", "st", 4),
)
NAME_MIN = 8


class OverviewView(ConsoleView):
    ACTIONS = frozenset({"budget"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "budget", "Budget", tooltip="Adjust the selected container's budgets"),
        Binding("w", "app.whatif", "What-if", tooltip="Re-route the stored decisions"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="overview")
        self._statuses: dict[str, ContainerStatus] = {}
        self._data: OverviewData | None = None
        self._widths = {column.key: column.width for column in COLUMNS}

    def compose(self) -> ComposeResult:
        yield Static(id="overview-totals", classes="summary")
        with Horizontal(id="overview-rate", classes="summary"):
            yield Static("req/s 1h ", classes="label")
            yield Sparkline([], id="rps")
            yield Static(id="rps-now", classes="label")
        with Horizontal(id="overview-body", classes="body"):
            yield LiveTable(COLUMNS, id="containers")
            with Vertical(id="overview-side", classes="side"):
                yield ContainerCard(id="container-card")
                yield AlertsList(id="alerts")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#containers", LiveTable)

    @property
    def selected(self) -> ContainerStatus | None:
        key = self.table.selected_key
        return self._statuses.get(key) if key else None

    def apply(self, snapshot: Snapshot) -> None:
        data = snapshot.overview
        if data is None:
            return
        self._data = data
        self._statuses = {s.name: s for s in data.containers}
        self._fit()
        self._show_totals(data)
        self.query_one(AlertsList).show(data.alerts)
        self._show_card()

    def on_resize(self, event: Resize) -> None:
        if self._data is not None:
            self._fit()
            self._show_totals(self._data)

    def _room(self) -> int:
        """The table's width: the view's, less the side panel where it sits beside it (never
        the table's own width, which follows its columns)."""
        room = self.size.width or self.app.size.width
        body = self.query_one("#overview-body")
        if body.styles.layout is not None and body.styles.layout.name == "horizontal":
            # Its styled width: at the first poll after a resize, layout may not have run yet.
            width = self.query_one("#overview-side").styles.width
            side = self.query_one("#overview-side").outer_size.width
            if width is not None and width.is_cells:
                side = int(width.value)
            room -= side
        return room

    def _fit(self) -> None:
        """Size the columns to the table's width, then show the rows elided to them."""
        statuses = self._statuses.values()
        names = max((len(s.name) for s in statuses), default=0)
        # Money columns are as wide as their widest figure ($0.00008 is 8): never cut.
        amounts = {
            "today": [s.spend["daily"] for s in statuses],
            "week": [s.spend["weekly"] for s in statuses],
            "month": [s.spend["monthly"] for s in statuses],
            "burn": [s.burn_per_hour for s in statuses],
            "saved": [use.saved_usd for s in statuses if (use := s.cache.get("daily"))],
        }
        specs = []
        for c in COLUMNS:
            if c.key == "container":
                want = max(names, len(c.label))
                specs.append(Spec(c.key, minimum=NAME_MIN, want=want, grow=True))
                continue
            width = max([c.width, *(len(money(v)) for v in amounts.get(c.key, []))])
            specs.append(Spec(c.key, width, optional=c.key in ("week", "month")))
        self._widths = fit(self._room(), specs)
        self.table.set_columns(fitted(COLUMNS, self._widths))
        self.table.sync({s.name: _cells(s, self._widths) for s in statuses})

    def _show_totals(self, data: OverviewData) -> None:
        totals = data.totals
        text = Text()
        for label, period in (("today", "daily"), ("week", "weekly"), ("month", "monthly")):
            text.append(f"{label} ", style="dim")
            text.append(money(totals.spend.get(period, 0.0)), style="bold")
            text.append("  ")
        text.append("burn ", style="dim")
        text.append(f"{money(totals.burn_per_hour)}/h", style="bold")
        text.append("  ")
        text.append(f"{count(totals.requests_day)} req", style="bold")
        errors = totals.errors_day
        text.append(f" ({count(errors)} err)", style="red" if errors else "dim")
        containers = f"  {len(data.containers)} containers"
        if text.cell_len + len(containers) <= max(self.size.width - 2, 0):
            text.append(containers, style="dim")
        self.query_one("#overview-totals", Static).update(text)
        self.query_one("#rps", Sparkline).data = data.rps
        self.query_one("#rps-now", Static).update(f" {totals.rps_now:.2f}/s")

    def _show_card(self) -> None:
        self.query_one(ContainerCard).show(self.selected)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_card()

    def action_budget(self) -> None:
        status = self.selected
        if status is None:
            self.notify("No container selected", severity="warning")
            return
        current = {
            period: meter.limit
            for period, meter in zip(("daily", "weekly", "monthly"), status.budgets, strict=True)
        }
        self.post_message(BudgetRequested(status.name, current))


def _cells(status: ContainerStatus, widths: dict[str, int]) -> tuple[str | Text, ...]:
    today = status.cache.get("daily")
    sessions = status.sessions_today
    none = Text("-", style="dim")
    cells: dict[str, str | Text] = {
        "container": elide(status.name, widths["container"]),
        "today": money(status.spend["daily"]),
        "budget": gauge(status.budgets[0], DAY_BAR),
        "week": money(status.spend["weekly"]),
        "month": money(status.spend["monthly"]),
        "burn": money(status.burn_per_hour),
        "sessions": none if sessions is None else count(sessions).rjust(4),
        "cache": Text(percent(today.hit_ratio).rjust(4)) if today and today.active else none,
        "saved": Text(money(today.saved_usd), style="green") if today and today.active else none,
        "status": Text(
            status.status.upper() if status.status == "hard" else status.status,
            style=LEVEL_STYLES[status.status],
        ),
    }
    return pick(cells, widths)
