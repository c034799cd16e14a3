"""ContainerCard: the selected container's budgets and quotas as bars, with forecast and burn,
and what prompt caching did for it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from omen_tui.format import LEVEL_STYLES, bar, count, money, percent
from omen_tui.model.budget import ContainerStatus, Meter
from omen_tui.model.cache import CacheUse

BAR = 12


class ContainerCard(Static):
    def show(self, status: ContainerStatus | None) -> None:
        self.update(render_card(status))


def render_card(status: ContainerStatus | None) -> Text:
    if status is None:
        return Text("no container selected", style="dim")
    text = Text()
    text.append(status.name, style="bold")
    text.append("  ")
    text.append(status.status.upper() if status.status == "hard" else status.status)
    text.stylize(LEVEL_STYLES[status.status], len(status.name) + 2)
    worst = status.worst
    if worst is not None and status.status != "ok":
        text.append(f" ({worst.label} {(worst.fraction or 0) * 100:.0f}%)", style="dim")
    details = []
    if status.on_exceed:
        details.append(f"on exceed: {status.on_exceed}")
    if status.rate_limit:
        details.append(f"rate {status.rate_limit}")
    if not status.live:
        details.append("from the store (daemon not reachable)")
    if details:
        text.append("  " + " · ".join(details), style="dim")
    for meter in status.budgets:
        text.append("\n")
        text.append_text(_meter_line(meter))
    for meter in status.quotas:
        text.append("\n")
        text.append_text(_meter_line(meter))
    text.append("\n")
    text.append(
        f"burn {money(status.burn_per_hour)}/h · {count(status.requests_day)} req today"
        f" ({count(status.errors_day)} err) · {count(status.tokens_day)} tokens",
        style="dim",
    )
    text.append("\n")
    text.append_text(cache_line(status.cache))
    return text


def cache_line(cache: dict[str, CacheUse]) -> Text:
    """`cache today 87% hit · saved $1.24 · 3.1k written · month 71% · saved $30.12`."""
    today, month = cache.get("daily", CacheUse()), cache.get("monthly", CacheUse())
    line = Text("cache ", style="dim")
    if not today.active and not month.active:
        line.append("no prompt-cache use this month", style="dim")
        return line
    line.append("today ", style="dim")
    if today.active:
        line.append(f"{percent(today.hit_ratio)} hit", style="bold")
        line.append(" · saved ", style="dim")
        line.append(money(today.saved_usd), style="green" if today.saved_usd else "")
        if today.write_tokens:
            line.append(f" · {count(today.write_tokens)} written", style="dim")
    else:
        line.append("none", style="dim")
    line.append(
        f" · month {percent(month.hit_ratio)} · saved {money(month.saved_usd)}", style="dim"
    )
    return line


def _meter_line(meter: Meter) -> Text:
    used = money(meter.used) if meter.money else count(meter.used)
    if meter.limit is None:
        limit = "no limit" if meter.known else "?"
    else:
        limit = money(meter.limit) if meter.money else count(meter.limit)
    line = Text(f"{meter.label:<10} ")
    line.append(f"{used + ' / ' + limit:<18} ")
    line.append_text(bar(meter.fraction, BAR, known=meter.known))
    if meter.forecast is not None:
        style = "bold red" if meter.forecast_over else "dim"
        arrow = " ▲" if meter.forecast_over else ""
        line.append(f"  fcst {money(meter.forecast)}{arrow}", style=style)
    return line
