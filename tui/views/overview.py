"""1 Overview: every container's spend against its budgets, quotas, burn and forecast, alerts,
and its prompt-cache hit ratio (the card adds what the cache saved)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from omen_tui.format import LEVEL_STYLES, bar, count, money, percent
from omen_tui.messages import BudgetRequested
from omen_tui.model import Snapshot
from omen_tui.model.budget import ContainerStatus
from omen_tui.model.snapshot import OverviewData
from omen_tui.views.base import ConsoleView
from omen_tui.widgets.alerts_list import AlertsList
from omen_tui.widgets.container_card import ContainerCard
from omen_tui.widgets.live_table import Column, LiveTable

# 78 columns with cell padding: 80 less a vertical scrollbar, once containers overflow.
DAY_BAR = 7
COLUMNS = (
    Column("container", "container", 12),
    Column("today", "today", 7),
    Column("budget", "day budget", DAY_BAR + 5),
    Column("week", "week", 7),
    Column("month", "month", 8),
    Column("burn", "burn/h", 7),
    Column("cache", "cache", 5),  # today's prompt-cache hit ratio
    Column("status", "st", 4),
)


class OverviewView(ConsoleView):
    ACTIONS = frozenset({"budget"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "budget", "Budget", tooltip="Adjust the selected container's budgets"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="overview")
        self._statuses: dict[str, ContainerStatus] = {}

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
        self._statuses = {s.name: s for s in data.containers}
        self.table.sync({s.name: _cells(s) for s in data.containers})
        self._show_totals(data)
        self.query_one(AlertsList).show(data.alerts)
        self._show_card()

    def _show_totals(self, data: OverviewData) -> None:
        totals = data.totals
        text = Text()
        for label, period in (("today", "daily"), ("week", "weekly"), ("month", "monthly")):
            text.append(f"{label} ", style="dim")
            text.append(money(totals.spend.get(period, 0.0)), style="bold")
            text.append("  ")
        text.append(f"{count(totals.requests_day)} req", style="bold")
        errors = totals.errors_day
        text.append(f" ({count(errors)} err)", style="red" if errors else "dim")
        text.append(f"  {len(data.containers)} containers", style="dim")
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


def _cells(status: ContainerStatus) -> tuple[str | Text, ...]:
    day = status.budgets[0]
    style = LEVEL_STYLES[status.status]
    return (
        status.name,
        money(status.spend["daily"]),
        bar(day.fraction, DAY_BAR, known=day.known),
        money(status.spend["weekly"]),
        money(status.spend["monthly"]),
        money(status.burn_per_hour),
        _cache_cell(status),
        Text(status.status.upper() if status.status == "hard" else status.status, style=style),
    )


def _cache_cell(status: ContainerStatus) -> Text:
    today = status.cache.get("daily")
    if today is None or not today.active:
        return Text("-", style="dim")
    return Text(percent(today.hit_ratio).rjust(4))
