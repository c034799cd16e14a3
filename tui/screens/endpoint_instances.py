"""EndpointInstances: one endpoint as each instance of a fleet sees it — its newest probe from
every instance (health, probe latency, when, in flight, error), and the fleet-wide drain.

What the last poll brought, as of when it was opened; Providers' card shows the same in one
line under the table."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from omen_tui.format import HEALTH_STYLES, ago, millis
from omen_tui.model.fleet import FLEET_STALE_S
from omen_tui.model.snapshot import EndpointStatus, InstanceView


class EndpointInstances(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close"),
    ]

    def __init__(self, endpoint: EndpointStatus, now: float) -> None:
        super().__init__(classes="modal")
        self.endpoint = endpoint
        self.now = now

    def compose(self) -> ComposeResult:
        e = self.endpoint
        with VerticalScroll(classes="dialog"):
            yield Static(f"{e.key} — each instance's view", classes="dialog-title")
            yield Static(instances_table(e.instances, self.now), id="instances-table")
            yield Static(summary(e, self.now), classes="dialog-text")
            yield Static("esc: close", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)


def instances_table(views: list[InstanceView], now: float) -> Table | Text:
    if not views:
        return Text("no instance has probed it", style="dim")
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, header_style="bold")
    for name in ("instance", "health", "probe", "checked", "infl"):
        table.add_column(name, no_wrap=True)
    table.add_column("error", overflow="fold")
    for view in views:
        health = "healthy" if view.healthy else "unhealthy"
        table.add_row(
            view.instance or "(unnamed)",
            Text(health, style=HEALTH_STYLES[health]) if view.fresh else Text("silent", "dim"),
            millis(view.latency_ms),
            ago(view.checked_ts, now),
            str(view.in_flight),
            Text(view.error or "", style="red"),
        )
    return table


def summary(e: EndpointStatus, now: float) -> Text:
    text = Text()
    text.append("fleet: ", style="dim")
    text.append(e.health, style=HEALTH_STYLES.get(e.health, ""))
    text.append(f", {e.in_flight} in flight", style="dim")
    text.append(
        f"\nsilent: no probe from that instance for {FLEET_STALE_S // 60} min (stopped, or "
        f"retired); it no longer counts.",
        style="dim",
    )
    if e.drained:
        text.append("\ndrained (fleet-wide)", style="magenta")
        if e.drain_reason:
            text.append(f": {e.drain_reason}")
        if e.drain_actor:
            via = f" via {e.drain_instance}" if e.drain_instance else ""
            text.append(f" by {e.drain_actor}{via}, {ago(e.drain_ts, now)}", style="dim")
    return text
