"""4 GPU: per Ollama endpoint — utilisation, VRAM, loaded models, in-flight, the last hour."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from omen_tui.format import ago, bar, clock, gib
from omen_tui.messages import DrainRequested, RefreshRequested
from omen_tui.model import Snapshot
from omen_tui.model.snapshot import GpuStatus
from omen_tui.views.base import ConsoleView
from omen_tui.widgets.gpu_chart import GpuChart
from omen_tui.widgets.live_table import Column, LiveTable

COLUMNS = (
    Column("endpoint", "endpoint", 16),
    Column("util", "GPU util", 13),
    Column("vram", "VRAM", 11),
    Column("vram_bar", "VRAM used", 13),
    Column("in_flight", "infl", 4),
    Column("models", "loaded models", 50),
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
        self._history_key: str | None = None

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
        self._endpoints = {e.key: e for e in data.endpoints}
        self.table.sync({e.key: _cells(e) for e in data.endpoints})
        self._history_key = data.history_key
        chart = self.query_one(GpuChart)
        if data.history_key is None:
            chart.show("no Ollama endpoint has reported GPU samples yet", [], snapshot.now)
        else:
            chart.show(f"{data.history_key} · last hour", data.history, snapshot.now)
        self._show_models()

    def _show_models(self) -> None:
        self.query_one("#gpu-models", Static).update(models_line(self.selected, self._now))

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


def _cells(e: GpuStatus) -> tuple[str | Text, ...]:
    fraction = e.vram_used / e.vram_total if e.vram_used is not None and e.vram_total else None
    used = gib(e.vram_used)
    vram = f"{used}/{gib(e.vram_total)}" if e.vram_total else used
    names = ", ".join(str(m.get("name")) for m in e.models) or "-"
    endpoint = Text(e.endpoint)
    if e.drained:
        endpoint.append(" ⏸", style="magenta")
    return (
        endpoint,
        bar(None if e.util is None else e.util / 100, 8),
        vram,
        bar(fraction, 8),
        str(e.in_flight),
        names,
    )


def models_line(e: GpuStatus | None, now: float) -> Text:
    if e is None:
        return Text("no endpoint selected", style="dim")
    text = Text(e.key, style="bold")
    text.append(f"  sampled {ago(e.ts, now)}", style="dim")
    if e.drained:
        text.append("  drained", style="magenta")
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
