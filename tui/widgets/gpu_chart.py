"""GpuChart: GPU utilisation (left axis, %) and VRAM used (right axis, GiB) over the last hour.

plotext draws into a text matrix that becomes a Rich Text in this Static. plotext keeps its
figure in module state, so it is only ever driven from the UI thread; the chart is redrawn
when its data or size changes, never more than once per poll.
"""

from __future__ import annotations

import plotext as plt
from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from omen_tui.model.snapshot import GpuPoint

UTIL_COLOUR = "green"
VRAM_COLOUR = "cyan"


class GpuChart(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._points: list[GpuPoint] = []
        self._now = 0.0
        self._title = ""
        self._drawn: tuple[object, ...] | None = None

    def show(self, title: str, points: list[GpuPoint], now: float) -> None:
        self._title, self._points, self._now = title, points, now
        self._draw()

    def on_resize(self, event: Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        width, height = self.content_size.width, self.content_size.height
        # Redraw for new samples, a new size, or every 10 s as the time axis moves.
        last = self._points[-1].ts if self._points else None
        key = (self._title, len(self._points), last, self._now // 10, width, height)
        if key == self._drawn or width < 20 or height < 4:
            return
        self._drawn = key
        self.update(render_chart(self._title, self._points, self._now, width, height))


def render_chart(title: str, points: list[GpuPoint], now: float, width: int, height: int) -> Text:
    caption = Text(title, style="bold")
    utils = [(p.ts, p.util) for p in points if p.util is not None]
    vram = [(p.ts, p.vram_used / 2**30) for p in points if p.vram_used is not None]
    if utils:
        caption.append("  ▬ utilisation % (left)", style=UTIL_COLOUR)
    if vram:
        total = next((p.vram_total for p in reversed(points) if p.vram_total), None)
        label = f" of {total / 2**30:.0f} GiB" if total else ""
        caption.append(f"  ▬ VRAM GiB{label} (right)", style=VRAM_COLOUR)
    if not utils and not vram:
        caption.append("  no GPU samples in the last hour", style="dim")
        return caption
    figure = plt.figure
    figure.clear()
    plt.terminal.limit(False, False)
    figure.theme("simple")
    figure.plot_size(width, height - 1)
    figure.legend(False)
    x_ticks = [-60, -45, -30, -15, 0]
    figure.ruler("x").lim(-60, 0)
    figure.ruler("x").ticks(x_ticks, [f"{t}m" if t else "now" for t in x_ticks])
    if utils:
        figure.ruler("y", "left").lim(0, 100)
        _draw(figure, utils, now, UTIL_COLOUR, "left")
    if vram:
        top = max(v for _, v in vram)
        total = next((p.vram_total for p in reversed(points) if p.vram_total), None)
        figure.ruler("y", "right").lim(0, max(top, (total or 0) / 2**30, 1.0))
        _draw(figure, vram, now, VRAM_COLOUR, "right")
    chart = Text.from_ansi(figure.build().string())
    return Text("\n").join([caption, chart])


def _draw(
    figure: plt.figure, series: list[tuple[float, float]], now: float, colour: str, side: str
) -> None:
    xs = [(ts - now) / 60 for ts, _ in series]
    ys = [value for _, value in series]
    signal = figure.signal(xs, ys, yside=side, marker=plt.marker("hd", plt.pixel(colour)))
    signal.lines()
    figure.draw(signal)
