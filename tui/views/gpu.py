"""4 GPU: per Ollama endpoint — utilisation, VRAM, loaded models, in-flight, the last hour.

A gauge without a figure says why: no GPU metrics source for utilisation (Ollama reports
none itself), no VRAM total known, or no sample. The endpoint name and the loaded models
share the room the terminal has, the name first.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.widgets import DataTable, Static

from omen_tui.format import ago, bar, clock, elide, gib
from omen_tui.messages import DrainRequested, RefreshRequested
from omen_tui.model import Snapshot
from omen_tui.model.layout import Spec, fit
from omen_tui.model.snapshot import GpuStatus
from omen_tui.views.base import ConsoleView
from omen_tui.views.providers import fitted
from omen_tui.widgets.gpu_chart import GpuChart
from omen_tui.widgets.live_table import Column, LiveTable

GAUGE = 6  # bar cells, then " 100%"
COLUMNS = (
    Column("endpoint", "endpoint", 16),
    Column("util", "GPU util", GAUGE + 5),
    Column("vram", "VRAM", 11),
    Column("vram_bar", "VRAM used", GAUGE + 5),
    Column("in_flight", "infl", 4),
    Column("models", "loaded models", 30),
)


class GpuView(ConsoleView):
    ACTIONS = frozenset({"drain"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "drain", "Drain/undrain", tooltip="Stop (or resume) routing to it"),
    ]

    def __init__(self, *, readonly: bool) -> None:
        super().__init__(readonly=readonly, id="gpu")
        self._endpoints: dict[str, GpuStatus] = {}
        self._now = 0.0
        self._live = True
        self._history_key: str | None = None
        self._widths = {column.key: column.width for column in COLUMNS}

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="gpus")
        yield GpuChart(id="gpu-chart")
        yield Static(id="gpu-models", classes="detail-line")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#gpus", LiveTable)

    @property
    def selected(self) -> GpuStatus | None:
        key = self.table.selected_key
        return self._endpoints.get(key) if key else None

    @property
    def selection(self) -> str | None:
        return self.table.selected_key

    def apply(self, snapshot: Snapshot) -> None:
        data = snapshot.gpu
        if data is None:
            return
        self._now = snapshot.now
        self._live = snapshot.daemon.reachable
        self._endpoints = {e.key: e for e in data.endpoints}
        self._fit()
        self._history_key = data.history_key
        chart = self.query_one(GpuChart)
        if data.history_key is None:
            chart.show("no Ollama endpoint has reported GPU samples yet", [], snapshot.now)
        else:
            chart.show(f"{data.history_key} · last hour", data.history, snapshot.now)
        self._show_models()

    def on_resize(self, event: Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        room = self.size.width or self.app.size.width  # the table spans the view
        endpoints = self._endpoints.values()
        names = max((len(_name(e)) for e in endpoints), default=0)
        models = max((len(_models(e)) for e in endpoints), default=0)
        specs = [
            Spec("endpoint", minimum=10, want=names),
            *(Spec(c.key, c.width) for c in COLUMNS[1:-1]),
            Spec("models", minimum=13, want=models, grow=True),
        ]
        self._widths = fit(room, specs)
        self.table.set_columns(fitted(COLUMNS, self._widths))
        self.table.sync({e.key: _cells(e, self._widths, self._live) for e in endpoints})

    def _show_models(self) -> None:
        line = models_line(self.selected, self._now, live=self._live)
        self.query_one("#gpu-models", Static).update(line)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_models()
        # The chart follows the selection; ask for that endpoint's history now.
        selected = self.selected
        if selected is not None and selected.key != self._history_key:
            self.post_message(RefreshRequested())

    def action_drain(self) -> None:
        endpoint = self.selected
        if endpoint is None:
            self.notify("No endpoint selected", severity="warning")
            return
        self.post_message(
            DrainRequested(endpoint.provider, endpoint.endpoint, not endpoint.drained)
        )


def _name(e: GpuStatus) -> str:
    return e.endpoint + (" ⏸" if e.drained else "")


def _models(e: GpuStatus) -> str:
    return ", ".join(str(m.get("name")) for m in e.models) or "-"


def fit_models(e: GpuStatus, width: int) -> str:
    """The loaded models in `width`: all of them, or as many whole names as fit and `+N`
    (a list cut in its middle reads like one odd model name)."""
    names = [str(m.get("name")) for m in e.models]
    whole = ", ".join(names) or "-"
    if len(whole) <= width:
        return whole
    for shown in range(len(names) - 1, 0, -1):
        text = ", ".join(names[:shown]) + f" +{len(names) - shown}"
        if len(text) <= width:
            return text
    more = f" +{len(names) - 1}" if len(names) > 1 else ""
    return elide(names[0], width - len(more)) + more


def gpu_gauge(fraction: float | None, width: int, missing: str) -> Text:
    """A bar for a figure the endpoint reported; without one, `missing` says why."""
    if fraction is None:
        return Text(missing.ljust(width + 5), style="dim")
    return bar(fraction, width)


def _cells(e: GpuStatus, widths: dict[str, int], live: bool) -> tuple[str | Text, ...]:
    fraction = e.vram_used / e.vram_total if e.vram_used is not None and e.vram_total else None
    used = gib(e.vram_used)
    vram = f"{used}/{gib(e.vram_total)}" if e.vram_total else used
    endpoint = Text(elide(e.endpoint, widths["endpoint"] - (2 if e.drained else 0)))
    if e.drained:
        endpoint.append(" ⏸", style="magenta")
    # Without a total, the used figure is in the VRAM column; only the share is unknown.
    vram_missing = "no sample" if e.vram_used is None else "total ?"
    return (
        endpoint,
        gpu_gauge(None if e.util is None else e.util / 100, GAUGE, "no metrics"),
        vram,
        gpu_gauge(fraction, GAUGE, vram_missing),
        str(e.in_flight) if live else Text("?", style="dim"),  # a sample's count is stale
        fit_models(e, widths["models"]),
    )


def models_line(e: GpuStatus | None, now: float, *, live: bool = True) -> Text:
    if e is None:
        return Text("no endpoint selected", style="dim")
    text = Text(e.key, style="bold")
    if live:
        text.append(f"  sampled {ago(e.ts, now)}", style="dim")
    else:
        text.append(f"  daemon down: last sample {ago(e.ts, now)}", style="yellow")
    if e.drained:
        text.append("  drained", style="magenta")
    if e.util is None:
        text.append("  utilisation: no GPU metrics source (gpu_metrics_url)", style="dim")
    if not e.models:
        text.append("\nno models loaded", style="dim")
    for model in e.models:
        text.append(f"\n{model.get('name')}", style="bold")
        text.append(f"  VRAM {gib(_int(model.get('size_vram')))} of {gib(_int(model.get('size')))}")
        expires = model.get("expires_at")
        if isinstance(expires, int | float):
            text.append(f"  unloads {clock(float(expires))}", style="dim")
        elif isinstance(expires, str) and expires:
            text.append(f"  unloads {expires[11:19]}", style="dim")
    return text


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None
