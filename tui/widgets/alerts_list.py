"""AlertsList: the latest budget alerts (audit rows `budget_alert`), newest first."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from omen_tui.format import money, stamp
from omen_tui.model.snapshot import Alert

SHOWN = 8


class AlertsList(Static):
    def show(self, alerts: list[Alert]) -> None:
        self.update(render_alerts(alerts))


def render_alerts(alerts: list[Alert]) -> Text:
    text = Text("alerts", style="bold")
    if not alerts:
        text.append("  no budget alerts in the last 7 days", style="dim")
        return text
    for alert in alerts[:SHOWN]:
        percent = "" if alert.percent is None else f"{alert.percent:.0f}% "
        text.append("\n")
        text.append(stamp(alert.ts)[5:16] + " ", style="dim")
        text.append(f"{alert.container} ", style="bold")
        text.append(f"{alert.period} {percent}", style="yellow")
        text.append(f"{money(alert.spent)} of {money(alert.budget)}", style="dim")
    return text
