"""DaemonStatus: the header's right side — daemon reachable or not, paused, filter, clock."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from omen_tui.format import clock
from omen_tui.model import DaemonState, Filter


class DaemonStatus(Static):
    def show(
        self, daemon: DaemonState | None, *, paused: bool, filt: Filter, now: float | None
    ) -> None:
        self.update(render_status(daemon, paused=paused, filt=filt, now=now))


def render_status(
    daemon: DaemonState | None, *, paused: bool, filt: Filter, now: float | None
) -> Text:
    text = Text()
    if filt.active:
        text.append(f"/{filt.describe()} ", style="bold yellow")
    if paused:
        text.append("⏸ paused ", style="bold yellow")
    if daemon is None:
        text.append("… connecting", style="dim")
    elif not daemon.reachable:
        text.append("✖ daemon unreachable", style="bold red")
    elif not daemon.admin:
        text.append("● daemon up", style="green")
        text.append(" · no admin access", style="yellow")
    else:
        text.append("● daemon up", style="bold green")
    if now is not None:
        text.append(f" {clock(now)}", style="dim")
    return text
