"""WhatIfScreen: the period's stored decisions re-routed under another strategy or prefer_local,
actual vs what-if per container and in total — `omen whatif` through `GET /admin/whatif`.

The daemon does the re-routing (it has the config: prices, policies, rules), so this needs
the daemon and an admin key; without them the screen says why. The call runs off the UI
thread; changing the form asks again, and an answer to an older question is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Select, Static

from omen_tui.client import AdminClient, AdminError
from omen_tui.format import count, elide, millis, money, percent

AS_DECIDED = "decided"
AS_CONFIGURED = "configured"
STRATEGIES = (
    ("as decided", AS_DECIDED),
    ("cost-optimized", "cost-optimized"),
    ("latency-first", "latency-first"),
    ("balanced", "balanced"),
    ("quality-first", "quality-first"),
)
PREFER_LOCAL = (("as configured", AS_CONFIGURED), ("on", "on"), ("off", "off"))
PERIODS = (("last hour", "1h"), ("last 24h", "24h"), ("last 7 days", "7d"))
NAME_MIN = 8


@dataclass(frozen=True, slots=True)
class Question:
    """What the form asks; None keeps what each decision (or its container) had."""

    since: str = "24h"
    strategy: str | None = None
    prefer_local: bool | None = None

    def describe(self) -> str:
        strategy = self.strategy or "each decision's own strategy"
        local = (
            "prefer_local as configured"
            if self.prefer_local is None
            else f"prefer_local {'on' if self.prefer_local else 'off'}"
        )
        return f"{strategy}, {local}, last {self.since}"


class WhatIfScreen(Screen[None]):
    DEFAULT_CSS = """
    WhatIfScreen #whatif-form { height: 1; padding: 0 1; margin-bottom: 1; }
    WhatIfScreen #whatif-form .label { width: auto; padding: 0 1 0 0; }
    WhatIfScreen #whatif-form .gap { width: 2; }
    WhatIfScreen #whatif-strategy { width: 20; }
    WhatIfScreen #whatif-local { width: 17; }
    WhatIfScreen #whatif-period { width: 15; }
    WhatIfScreen #whatif-body { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+r", "ask", "Ask again"),
    ]

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client
        self.question = Question()
        self.answer: dict[str, Any] | None = None
        self.error: AdminError | None = None

    def compose(self) -> ComposeResult:
        title = Text("What if the router had decided otherwise?", style="bold")
        yield Static(title, classes="summary")
        with Horizontal(id="whatif-form"):
            yield Static("strategy", classes="label")
            yield Select(STRATEGIES, value=AS_DECIDED, allow_blank=False, compact=True,
                         id="whatif-strategy")  # fmt: skip
            yield Static(classes="gap")
            yield Static("local first", classes="label")
            yield Select(PREFER_LOCAL, value=AS_CONFIGURED, allow_blank=False, compact=True,
                         id="whatif-local")  # fmt: skip
            yield Static(classes="gap")
            yield Select(PERIODS, value="24h", allow_blank=False, compact=True,
                         id="whatif-period")  # fmt: skip
        with VerticalScroll(id="whatif-body"):
            yield Static(Text("asking the daemon…", style="dim"), id="whatif-result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#whatif-strategy", Select).focus()
        self._ask(self.question)

    @on(Select.Changed)
    def _form_changed(self) -> None:
        question = self._read_form()
        if question != self.question:
            self.question = question
            self._ask(question)

    def _read_form(self) -> Question:
        strategy = str(self.query_one("#whatif-strategy", Select).value)
        local = str(self.query_one("#whatif-local", Select).value)
        return Question(
            since=str(self.query_one("#whatif-period", Select).value),
            strategy=None if strategy == AS_DECIDED else strategy,
            prefer_local=None if local == AS_CONFIGURED else local == "on",
        )

    def action_ask(self) -> None:
        self._ask(self.question)

    @work(group="whatif", exclusive=True, exit_on_error=False)
    async def _ask(self, question: Question) -> None:
        self.query_one("#whatif-result", Static).update(
            Text(f"asking the daemon: {question.describe()}…", style="dim")
        )
        try:
            answer = await asyncio.to_thread(
                self.client.whatif,
                since=question.since,
                strategy=question.strategy,
                prefer_local=question.prefer_local,
            )
        except AdminError as exc:
            if question == self.question:
                self.answer, self.error = None, exc
                self._show()
            return
        if question == self.question:  # the form may have changed meanwhile
            self.answer, self.error = answer, None
            self._show()

    def on_resize(self, event: events.Resize) -> None:
        if self.answer is not None:
            self._show()

    def _show(self) -> None:
        result = self.query_one("#whatif-result", Static)
        if self.error is not None:
            result.update(why_not(self.error, self.client.base_url))
        elif self.answer is not None:
            width = (self.size.width or self.app.size.width) - 4
            result.update(render_answer(self.answer, self.question, width))

    def action_back(self) -> None:
        self.dismiss(None)


def why_not(error: AdminError, url: str) -> Text:
    """What stands in the way, in the operator's words, and what to do about it."""
    text = Text()
    if error.unreachable:
        text.append(f"The daemon is unreachable at {url}.", style="bold red")
        text.append(
            "\nWhat-if re-routes the stored decisions with the daemon's own config (prices, "
            "policies, rules), so it asks the daemon. Start `omen serve`, or run "
            "`omen whatif` where the config and the store are.",
        )
    elif error.refused:
        text.append("No admin access: what-if is an admin route.", style="bold red")
        text.append(f"\n{error.message}")
    else:
        text.append("What-if failed.", style="bold red")
        text.append(f"\n{error.message}")
    return text


HEADERS = ("container", "req", "changed", "cost", "local", "latency", "quality")


def render_answer(answer: dict[str, Any], question: Question, width: int) -> RenderableType:
    """Actual → what-if per container and in total, and what the totals stand on; the
    container name takes the room the figures leave, middle-elided past it."""
    total = answer.get("total") or {}
    containers: dict[str, Any] = answer.get("containers") or {}
    if not total.get("requests"):
        return Text(f"No served requests in this period ({question.describe()}).", style="dim")
    named = [(name, tally) for name, tally in containers.items() if tally.get("requests")]
    rows = [(name, _figures(tally)) for name, tally in [*named, ("TOTAL", total)]]
    figures = sum(
        1 + max(len(HEADERS[i + 1]), *(cells[i].cell_len for _, cells in rows))
        for i in range(len(HEADERS) - 1)
    )
    longest = max(len(name) for name, _ in rows)
    name_width = max(NAME_MIN, min(longest, width - figures - 1))
    table = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, header_style="bold")
    table.add_column(HEADERS[0], no_wrap=True, width=name_width)
    for header in HEADERS[1:]:
        right = header in ("req", "changed")
        table.add_column(header, no_wrap=True, justify="right" if right else "left")
    for name, cells in rows:
        style = "bold" if name == "TOTAL" else ""
        table.add_row(Text(elide(name, name_width)), *cells, style=style)
    notes = Text(style="dim")
    notes.append("each cell: actual→what-if. ", style="italic")
    notes.append(
        f"{question.describe()}: {count(int(total.get('rerouted') or 0))} `auto` decisions "
        f"ranked again, {count(int(total.get('changed') or 0))} would have gone elsewhere; "
        f"{count(int(total.get('unchanged') or 0))} for an explicit model counted as they were."
    )
    if total.get("skipped"):
        notes.append(f" {count(int(total['skipped']))} refused or failed before any provider.")
    if total.get("unpriced"):
        notes.append(f" {count(int(total['unpriced']))} had an option with no price: estimated.")
    notes.append(" Latency: observed, or the option's estimate; quality: configured scores.")
    return Group(table, Text(""), notes)


def _figures(tally: dict[str, Any]) -> tuple[Text, ...]:
    actual, whatif = tally.get("actual") or {}, tally.get("whatif") or {}
    return (
        Text(count(int(tally.get("requests") or 0))),
        Text(count(int(tally.get("changed") or 0))),
        _pair(actual, whatif, "cost_usd", money, lower_is_better=True),
        _pair(actual, whatif, "local_share", percent, lower_is_better=False),
        _pair(actual, whatif, "est_latency_ms", millis, lower_is_better=True),
        _pair(actual, whatif, "mean_quality", _quality, lower_is_better=False),
    )


def _pair(
    actual: dict[str, Any],
    whatif: dict[str, Any],
    field: str,
    shown: Callable[[Any], str],
    *,
    lower_is_better: bool,
) -> Text:
    """`$1.20→$0.40`: the what-if side green where it is better, red where worse."""
    old, new = actual.get(field), whatif.get(field)
    text = Text(f"{shown(old)}→")
    style = ""
    if isinstance(old, int | float) and isinstance(new, int | float) and old != new:
        style = "green" if (new < old) == lower_is_better else "red"
    text.append(shown(new), style=style)
    return text


def _quality(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"
