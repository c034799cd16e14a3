"""ContainerCard: the selected container's budgets and quotas as bars, with forecast and burn,
its agent sessions, and what prompt caching did for it."""

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


def gauge(meter: Meter, width: int) -> Text:
    """The meter's bar; without a limit, why: none configured, or unknown (daemon down)."""
    if meter.fraction is not None:
        return bar(meter.fraction, width)
    words = "no limit" if meter.known else "unknown"
    return Text(words.ljust(width + 5), style="dim")


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
    if details:
        text.append("  " + " · ".join(details), style="dim")
    if not status.live:
        text.append("\n")
        text.append(
            f"{status.offline}: limits unknown, quotas not shown; spend from the store",
            style="yellow",
        )
    for meter in status.budgets:
        text.append("\n")
        text.append_text(_meter_line(meter))
    for meter in status.quotas:
        text.append("\n")
        text.append_text(_meter_line(meter))
    text.append("\n")
    sessions = "" if status.sessions_today is None else f", {status.sessions_today} sessions"
    text.append(
        f"burn {money(status.burn_per_hour)}/h (1h) · today: {count(status.requests_day)} req,"
        f" {count(status.errors_day)} err, {count(status.tokens_day)} tok{sessions}",
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
        limit = "no limit" if meter.known else "unknown"
    else:
        limit = money(meter.limit) if meter.money else count(meter.limit)
    line = Text(f"{meter.label:<10} ")
    line.append(f"{used + ' / ' + limit:<18} ")
    line.append_text(gauge(meter, BAR))
    if meter.forecast is not None:
        style = "bold red" if meter.forecast_over else "dim"
        arrow = " ▲" if meter.forecast_over else ""
        line.append(f"  fcst {money(meter.forecast)}{arrow}", style=style)
    return line
