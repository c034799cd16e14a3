"""LearntScreen: what routing learnt — the store's outcome statistics per container, intent and
model, the value the router orders options by, and whether there is enough to go on yet.

It reads the store, so it works with the daemon down. The selected row's line shows its
value worked out, so an operator can see why one model is tried before another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from omen_store import StoreError, StoreReader
from omen_tui.format import count, elide, percent
from omen_tui.model.learnt import (
    LEAST,
    MIN_EVIDENCE,
    PRIOR_VALUE,
    Learnt,
    read_learnt,
    widths,
)
from omen_tui.screens.row_table import RowTableScreen
from omen_tui.widgets.live_table import Column, LiveTable

LABELS = {
    "container": "container",
    "intent": "intent",
    "route": "provider/model",
    "requests": "req",
    "ok": "ok",
    "escalations": "esc",
    "feedback": "feedback",
    "value": "value",
    "enough": "enough",
}
RIGHT = ("requests", "ok", "escalations", "value")  # figures line up on the right


class LearntScreen(RowTableScreen[Learnt]):
    STRIP = "learnt-line"
    DEFAULT_CSS = """
    LearntScreen #learnt-summary { height: auto; padding: 0 1; }
    LearntScreen #learnt { padding-left: 1; scrollbar-size-vertical: 1;
                           scrollbar-gutter: stable; overflow-x: hidden; }
    LearntScreen #learnt-line { height: auto; min-height: 3; max-height: 5; padding: 0 1;
                                background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the statistics again"),
    ]

    def __init__(self, open_store: Callable[[], StoreReader]) -> None:
        super().__init__()
        self.open_store = open_store

    def compose(self) -> ComposeResult:
        yield Static(Text("reading the outcome statistics…", style="dim"), id="learnt-summary")
        yield LiveTable(self._columns(80), id="learnt", cell_padding=0)
        yield Static(id="learnt-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()
        self._load()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exit_on_error=False, group="learnt", exclusive=True)
    def _load(self) -> None:
        try:
            rows: list[Learnt] | str = read_learnt(self.open_store())
        except StoreError as exc:
            rows = str(exc)
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[Learnt] | str) -> None:
        summary = self.query_one("#learnt-summary", Static)
        if isinstance(rows, str):
            summary.update(Text(f"cannot read what routing learnt: {rows}", style="red"))
            return
        self.rows = {_key(row): row for row in rows}
        summary.update(self._summary())
        self._fill()

    def _summary(self) -> Text:
        rows = self.rows.values()
        enough = sum(1 for row in rows if row.enough)
        containers = len({row.container for row in rows})
        text = Text()
        text.append("What routing learnt", style="bold")
        if not rows:
            text.append(
                "  no outcomes yet: each routed request with an intent adds one, and "
                "POST /v1/feedback (or + / - on a replay) a verdict",
                style="dim",
            )
            return text
        text.append(f"  {len(rows)} models in {containers} containers, {enough} with enough")
        text.append(f" evidence (≥{MIN_EVIDENCE})", style="dim")
        text.append(
            "\nvalue = reliability × satisfaction: what [routing] adaptive = true orders by",
            style="dim",
        )
        return text

    def _cells(self, row: Learnt) -> tuple[str | Text, ...]:
        return cells(row, self._widths)

    def _in_full(self, row: Learnt | None) -> Text:
        return worked_out(row)

    def _columns(self, width: int) -> list[Column]:
        rows = self.rows.values()
        widest = {
            "container": max([len(LABELS["container"]), *(len(r.container) for r in rows)]),
            "intent": max([len(LABELS["intent"]), *(len(r.intent) for r in rows)]),
            "route": max([len(LABELS["route"]), *(len(r.route) for r in rows)]),
        }
        self._widths = widths(max(LEAST, width - 2), widest)  # less padding and scrollbar
        return [
            Column(key, elide(LABELS[key], size).rjust(size if key in RIGHT else 0), size + 1)
            for key, size in self._widths.items()
        ]


def _key(row: Learnt) -> str:
    return f"{row.container}\x1f{row.intent}\x1f{row.provider}\x1f{row.model}"


def cells(row: Learnt, sized: dict[str, int]) -> tuple[str | Text, ...]:
    """One row's cells, names middle-elided to their columns' widths."""
    feedback = (
        f"{row.feedback_mean:.2f} ({count(row.feedback_n)})"
        if row.feedback_mean is not None
        else "-"
    )
    ok = row.ok_share
    values: dict[str, str | Text] = {
        "container": elide(row.container, sized["container"]),
        "intent": elide(row.intent, sized["intent"]),
        "route": elide(row.route, sized["route"]),
        "requests": count(row.requests).rjust(sized["requests"]),
        "ok": Text(
            percent(ok).rjust(sized["ok"]),
            style="" if ok is None or ok >= 0.95 else "yellow" if ok >= 0.8 else "red",
        ),
        "escalations": str(row.escalations).rjust(sized["escalations"]),
        "feedback": elide(feedback, sized["feedback"]),
        "value": Text(f"{row.value:.2f}".rjust(sized["value"]), style="" if row.enough else "dim"),
        "enough": Text("yes", style="green")
        if row.enough
        else Text(f"{row.evidence}/{MIN_EVIDENCE}", style="dim"),
    }
    return tuple(values[key] for key in sized)


def worked_out(row: Learnt | None) -> Text:
    """The selected row's value, its formulas filled in, on three lines."""
    if row is None:
        return Text("no model selected", style="dim")
    bad = min(row.requests, max(row.errors, row.escalations))
    text = Text()
    text.append(f"{row.container} · {row.intent} · {row.route}", style="bold")
    text.append(
        f": {row.requests} requests, {row.errors} errors, {row.escalations} escalations, "
        f"{row.feedback_n} verdicts"
    )
    text.append(f"\nreliability ({row.requests}−{bad}+2)/({row.requests}+2) = ")
    text.append(f"{row.reliability:.2f}", style="bold")
    text.append(f"   satisfaction ({row.feedback_sum:g}+1.5)/({row.feedback_n}+2) = ")
    text.append(f"{row.satisfaction:.2f}", style="bold")
    text.append(f"\nvalue {row.reliability:.2f} × {row.satisfaction:.2f} = ")
    text.append(f"{row.value:.2f}", style="bold")
    if row.enough:
        text.append(f"; {row.evidence} outcomes: enough to move routing", style="dim")
    else:
        text.append(
            f"; {row.evidence} of {MIN_EVIDENCE} outcomes: routing counts it {PRIOR_VALUE:.2f}",
            style="dim",
        )
    return text
