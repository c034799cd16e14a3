"""3 Providers: every endpoint's health, latency, errors, in-flight and drain; `d` drains.

An endpoint is named `provider/name host:port` (the config's name, and where it points when
that differs), in a column that takes the room the terminal has: two Ollama boxes on one
host stay apart at 80 columns. p50/p95 come from the last 15 minutes of requests, else from
the health probes of the last hour (marked `~`); the summary says which.

On a fleet's store each instance probes every endpoint from where it runs: the health column
says what they agree on (`healthy 2/2`, `down on b`), the card under the table lists each
instance's view, and Enter opens them in full. A drain is fleet-wide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import urlsplit

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.widgets import DataTable, Static

from omen_tui.format import HEALTH_STYLES, ago, clock, elide, millis, percent
from omen_tui.messages import DrainRequested
from omen_tui.model import Snapshot
from omen_tui.model.layout import Spec, fit
from omen_tui.model.poller import LATENCY_WINDOW_S, PROBE_WINDOW_S
from omen_tui.model.snapshot import EndpointStatus, InstanceView
from omen_tui.screens.endpoint_instances import EndpointInstances
from omen_tui.views.base import ConsoleView
from omen_tui.widgets.live_table import Column, LiveTable

COLUMNS = (
    Column("endpoint", "endpoint", 24),
    Column("health", "health", 9),
    Column("p50", "p50", 6),
    Column("p95", "p95", 6),
    Column("errors", "err%", 4),
    Column("in_flight", "infl", 4),
    Column("drained", "drain", 5),
    Column("last_error", "last error", 40),
)
NAME_MIN = 14
HEALTH_MAX = 18  # `down on <instance>`: longer instance names are middle-elided
PROBE_MARK = "~"  # a p50/p95 from health probes, not requests


class ProvidersView(ConsoleView):
    ACTIONS = frozenset({"drain"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "drain", "Drain/undrain", tooltip="Stop (or resume) routing to it"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="providers")
        self._endpoints: dict[str, EndpointStatus] = {}
        self._now = 0.0
        self._live = True
        self._widths = {column.key: column.width for column in COLUMNS}

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
        self._live = snapshot.daemon.reachable
        self._endpoints = {e.key: e for e in data.endpoints}
        self._fit()
        self._show_summary()
        self._show_card()

    def on_resize(self, event: Resize) -> None:
        self._fit()
        self._show_summary()

    def _show_summary(self) -> None:
        summary = providers_summary(
            list(self._endpoints.values()), live=self._live, width=self.size.width - 2
        )
        self.query_one("#providers-summary", Static).update(summary)

    def _fit(self) -> None:
        room = self.size.width or self.app.size.width  # the table spans the view
        endpoints = self._endpoints.values()
        names = max((len(endpoint_name(e)) for e in endpoints), default=0)
        errors = max((len(e.last_error or "") for e in endpoints), default=0)
        health = min(max((len(health_label(e)) for e in endpoints), default=0), HEALTH_MAX)
        specs = [
            Spec("endpoint", minimum=NAME_MIN, want=names),
            # `healthy 2/2` whole; a long `down on <instance>` is what gives way.
            Spec("health", minimum=max(COLUMNS[1].width, min(health, 11)), want=health),
            *(Spec(c.key, c.width) for c in COLUMNS[2:-1]),
            Spec("last_error", minimum=10, want=max(errors, 10), optional=True, grow=True),
        ]
        self._widths = fit(room, specs)
        self.table.set_columns(fitted(COLUMNS, self._widths))
        self.table.sync({e.key: _cells(e, self._widths, self._live) for e in endpoints})

    def _show_card(self) -> None:
        card = endpoint_card(self.selected, self._now, live=self._live)
        self.query_one("#endpoint-card", Static).update(card)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_card()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a fleet's endpoint: every instance's view of it."""
        event.stop()
        endpoint = self._endpoints.get(str(event.row_key.value))
        if endpoint is not None and endpoint.fleet:
            self.app.push_screen(EndpointInstances(endpoint, self._now))

    def action_drain(self) -> None:
        endpoint = self.selected  # the row under the cursor, by its key
        if endpoint is None:
            self.notify("No endpoint selected", severity="warning")
            return
        self.post_message(
            DrainRequested(endpoint.provider, endpoint.endpoint, not endpoint.drained)
        )


def fitted(columns: Sequence[Column], widths: Mapping[str, int]) -> list[Column]:
    """The columns `layout.fit` kept, at the widths it gave them (for `set_columns`)."""
    return [Column(c.key, c.label, widths[c.key]) for c in columns if c.key in widths]


def pick(cells: Mapping[str, str | Text], widths: Mapping[str, int]) -> tuple[str | Text, ...]:
    """A row's cells for the columns shown, in their order."""
    return tuple(cells[key] for key in widths)


def host_port(url: str | None) -> str:
    """`10.0.0.11:11434` of `http://10.0.0.11:11434/v1` ("" when there is no url)."""
    if not url:
        return ""
    try:
        return urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:
        return ""


def endpoint_name(e: EndpointStatus) -> str:
    """`ollama/gpu-a 10.0.0.11:11434`: the name drain uses, and where it points if other."""
    where = host_port(e.url)
    return e.key if not where or where == e.endpoint else f"{e.key} {where}"


def name_cell(e: EndpointStatus, width: int) -> Text:
    """The endpoint's name in `width` cells: the name first (middle-elided if it must be),
    then host:port in what is left, dim."""
    if len(e.key) >= width:
        return Text(elide(e.key, width))
    text = Text(e.key)
    where = host_port(e.url)
    room = width - len(e.key) - 1
    if where and where != e.endpoint and room >= 6:
        text.append(" " + elide(where, room), style="dim")
    return text


def _latency(value: float | None, source: str) -> str:
    return millis(value) if source != "probes" or value is None else PROBE_MARK + millis(value)


def health_label(e: EndpointStatus, width: int = HEALTH_MAX) -> str:
    """The health column: on a fleet's store, what the instances that probed the endpoint
    lately agree on — `healthy 2/2`, `down 2/2`, `down on b`, `down on 2/3`."""
    seen = len(e.seen_by)
    if not e.fleet or seen < 2 or e.health not in ("healthy", "unhealthy", "degraded"):
        return e.health
    down = e.down_on
    if e.health == "healthy":
        return f"healthy {seen}/{seen}"
    if e.health == "unhealthy":
        return f"down {seen}/{seen}"
    if len(down) > 1:
        return f"down on {len(down)}/{seen}"
    return "down on " + elide(down[0], max(1, width - 8))


def _cells(e: EndpointStatus, widths: Mapping[str, int], live: bool) -> tuple[str | Text, ...]:
    live = live or e.fleet  # a fleet's in-flight comes from the other instances' probes too
    cells: dict[str, str | Text] = {
        "endpoint": name_cell(e, widths["endpoint"]),
        "health": Text(health_label(e, widths["health"]), style=HEALTH_STYLES.get(e.health, "")),
        "p50": _latency(e.p50_ms, e.latency_source),
        "p95": _latency(e.p95_ms, e.latency_source),
        "errors": Text(percent(e.error_rate), style="red" if (e.error_rate or 0) >= 0.1 else ""),
        "in_flight": str(e.in_flight) if live else Text("?", style="dim"),
        "drained": Text("yes", style="magenta") if e.drained else Text("-", style="dim"),
        "last_error": Text(elide(e.last_error or "", widths.get("last_error", 0)), style="red"),
    }
    return pick(cells, widths)


def providers_summary(endpoints: list[EndpointStatus], *, live: bool, width: int = 200) -> Text:
    """How many are healthy (or that nobody knows, with the daemon down), and what the
    latency and error figures are made of (left out rather than cut, where it does not fit
    in `width`: the card says it per endpoint)."""
    fleet = any(e.fleet for e in endpoints)  # the instances' probes say, daemon or not
    if live or fleet:
        healthy = sum(1 for e in endpoints if e.health == "healthy")
        text = Text(f"{healthy}/{len(endpoints)} healthy", style="bold")
        degraded = sum(1 for e in endpoints if e.health == "degraded")
        if degraded:
            text.append(f"  {degraded} degraded", style="yellow")
        probing = {view.instance for e in endpoints for view in e.seen_by}
        if len(probing) > 1:
            text.append(f"  {len(probing)} instances", style="dim")
        if not live:
            text.append("  daemon down", style="yellow")
    else:
        text = Text("daemon down: health unknown", style="bold yellow")
        probed = [e.checked_ts for e in endpoints if e.checked_ts is not None]
        if probed:
            text.append(f" (last probe {clock(max(probed))})", style="yellow")
    drained = sum(1 for e in endpoints if e.drained)
    if drained:
        text.append(f"  {drained} drained", style="magenta")
    sources = {e.latency_source for e in endpoints if e.latency_source}
    minutes, hours = LATENCY_WINDOW_S // 60, PROBE_WINDOW_S // 3600
    if sources == {"requests"}:
        note = f"p50/p95 err%: requests, last {minutes} min"
    elif sources == {"probes"}:
        note = f"{PROBE_MARK}p50/p95: health probes, last {hours}h (no requests)"
    elif sources:
        note = f"p50/p95: requests {minutes} min, {PROBE_MARK} probes {hours}h"
    else:
        note = "no latency figures yet"
    if text.cell_len + 2 + len(note) <= width:
        text.append(f"  {note}", style="dim")
    return text


def endpoint_card(e: EndpointStatus | None, now: float, *, live: bool = True) -> Text:
    if e is None:
        return Text("no endpoint selected", style="dim")
    text = Text(e.key, style="bold")
    where = host_port(e.url)
    if where and where != e.endpoint:
        text.append(f" {where}", style="dim")
    if e.fleet:  # each instance's probe is on the next line
        text.append("  enter: each instance's view", style="dim")
    elif live:
        text.append(f"  probe {millis(e.probe_ms)}, checked {ago(e.checked_ts, now)}", style="dim")
    elif e.probe_health:
        text.append(
            f"  last probe {ago(e.checked_ts, now)}: {e.probe_health} (daemon down)",
            style="yellow",
        )
    else:
        text.append("  never probed (daemon down)", style="yellow")
    if e.latency_source == "requests":
        text.append(f"  p50/p95 of {e.sample} requests", style="dim")
    elif e.latency_source == "probes":
        text.append(f"  {PROBE_MARK}p50/p95 of {e.sample} probes", style="dim")
    if e.error_source == "daemon":
        text.append("  err% of its last 20 calls", style="dim")
    text.append("\n")
    if e.fleet:
        text.append_text(instances_line(e.instances, now))
        text.append("\n")
    if e.drained:
        text.append("drained", style="magenta")
        if e.drain_reason:
            text.append(f": {e.drain_reason}")
        if e.drain_actor:
            via = f" via {e.drain_instance}" if e.fleet and e.drain_instance else ""
            text.append(f" (by {e.drain_actor}{via}, {ago(e.drain_ts, now)})", style="dim")
        text.append("  ")
    if e.loaded_models:
        text.append("loaded: " + ", ".join(e.loaded_models) + "  ", style="dim")
    if e.last_error:
        text.append(f"last error: {e.last_error}", style="red")
    elif not e.drained and not e.loaded_models:
        text.append("no errors", style="dim")
    return text


def instances_line(views: Sequence[InstanceView], now: float) -> Text:
    """Each instance's newest probe in one line: `a up 9ms 10s ago · b down: refused`."""
    if not views:
        return Text("no instance probed it", style="dim")
    text = Text()
    for view in views:
        if text:
            text.append(" · ", style="dim")
        text.append(view.instance or "(unnamed)", style="bold")
        if not view.fresh:
            text.append(f" silent since {ago(view.checked_ts, now)}", style="dim")
            continue
        if view.healthy:
            text.append(" up", style="green")
            text.append(f" {millis(view.latency_ms)}", style="dim")
        else:
            text.append(" down", style="bold red")
            if view.error:
                text.append(f": {view.error}", style="red")
        text.append(f" {ago(view.checked_ts, now)}", style="dim")
    return text
