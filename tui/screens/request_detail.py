"""RequestDetail: one routing decision in full — the instance that served it, the route (passed
through or translated, any fields dropped), session, prompt-cache use, scores, exclusions,
attempts, stored body.

Names (provider/model, endpoints) get the width they need and are middle-elided past it, so
gpt-4o and gpt-4o-mini never read alike; free text (errors, notes) wraps and is never cut."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import orjson
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from omen_store import RequestRow, StoreReader
from omen_tui.format import count, elide, millis, money, percent, stamp, status_text
from omen_tui.messages import ReplayRequested

BODY_LIMIT = 20_000  # characters of the stored body shown


class RequestDetail(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "replay", "Replay"),
    ]

    def __init__(
        self,
        request_id: str,
        open_store: Callable[[], StoreReader],
        *,
        readonly: bool,
        actions_ok: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.request_id = request_id
        self.open_store = open_store
        self.readonly = readonly
        self.actions_ok = actions_ok
        self.row: RequestRow | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(Text(f"loading {self.request_id}…", style="dim"), id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail").focus()
        self._load()

    @work(thread=True, exit_on_error=False, group="detail")
    def _load(self) -> None:
        reader = self.open_store()
        row = reader.get_request(self.request_id)
        body = reader.get_request_body(self.request_id) if row else None
        replays = reader.replays_of(self.request_id, limit=20) if row else []
        self.app.call_from_thread(self._show, row, body, replays)

    def _show(
        self, row: RequestRow | None, body: dict[str, Any] | None, replays: list[RequestRow]
    ) -> None:
        self.row = row
        self.query_one("#detail-body", Static).update(
            render_detail(self.request_id, row, body, replays)
        )
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "replay":
            if self.readonly:
                return False
            if not self.actions_ok() or self.row is None:
                return None
        return True

    def action_back(self) -> None:
        self.dismiss(None)

    def action_replay(self) -> None:
        if self.row is not None:
            self.app.post_message(ReplayRequested(self.row.id, self.row.provider, self.row.model))


def render_detail(
    request_id: str, row: RequestRow | None, body: dict[str, Any] | None, replays: list[RequestRow]
) -> RenderableType:
    if row is None:
        return Text(f"{request_id} is not in the store", style="red")
    decision = row.decision or {}
    parts: list[RenderableType] = [_summary(row, decision)]
    intent = decision.get("intent") or {}
    if intent or decision.get("strategy"):
        text = _heading("decision")  # a Text of its own: its style must not reach the lines
        text.append(f"\nintent {intent.get('name', row.intent)} ({intent.get('source', '?')})")
        signals = intent.get("signals") or []
        if signals:
            text.append(f" signals: {', '.join(map(str, signals))}", style="dim")
        text.append(f"\nstrategy {decision.get('strategy') or row.strategy}")
        if decision.get("rule"):
            text.append(f"  rule: {decision['rule']}")
        parts.append(text)
    if decision.get("options"):
        parts += [_heading("options (ranked)"), _options(decision["options"])]
    if decision.get("excluded"):
        parts += [_heading("excluded"), _rows(decision["excluded"], ("provider", "model", "why"))]
    if decision.get("candidates"):
        order = ("provider", "endpoint", "model", "note")
        parts += [_heading("candidates (in order)"), _rows(decision["candidates"], order)]
    if decision.get("attempts"):
        tried = ("provider", "endpoint", "model", "status", "ms", "error")
        parts += [_heading("attempts"), _rows(decision["attempts"], tried)]
    if replays:
        parts += [_heading("replays"), _replays(replays)]
    parts.append(_heading("request body (stored, redacted)"))
    if body is None:
        parts.append(Text("not stored (keep_request_bodies is 0, or it was pruned)", style="dim"))
    else:
        raw = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
        if len(raw) > BODY_LIMIT:
            raw = raw[:BODY_LIMIT] + f"\n… {len(raw) - BODY_LIMIT} more characters"
        parts.append(Text(raw))
    return Group(*parts)


def _heading(title: str) -> Text:
    """A section title; the style is the title's span, not the Text's base style, which
    would reach every line appended after it (the bold, underlined decision of old)."""
    text = Text("\n")
    text.append(title, style="bold underline")
    return text


def _summary(row: RequestRow, decision: dict[str, Any]) -> Text:
    text = Text()
    text.append(row.id, style="bold")
    text.append(f"  {stamp(row.ts)}  ")
    text.append_text(status_text(row.status))
    text.append(f"  {row.container}", style="bold")
    text.append(f" ({row.key_id or 'no key'}) {row.kind}{' stream' if row.stream else ''}")
    if row.instance:  # the fleet's instance that served it
        text.append("  served by ", style="dim")
        text.append(row.instance, style="bold")
    text.append(f"\n{row.requested_model} → ")
    route = f"{row.provider}/{row.model}@{row.endpoint}" if row.provider else "(not routed)"
    text.append(route, style="bold")
    passthrough = decision.get("passthrough")
    if row.provider and passthrough is not None:  # absent before the daemon recorded it
        text.append(" · passed through" if passthrough else " · translated", style="dim")
    ttft = f", ttft {millis(row.ttft_ms)}" if row.ttft_ms is not None else ""
    text.append(
        f"\n{millis(row.latency_ms)}{ttft} · {count(row.prompt_tokens)} in /"
        f" {count(row.completion_tokens)} out"
    )
    if row.reasoning_tokens:
        text.append(f" ({count(row.reasoning_tokens)} reasoning)")
    text.append(f" · {money(row.cost_usd)}")
    if row.cached_tokens or row.cache_write_tokens or row.cache_saved_usd:
        text.append("\n")
        text.append_text(_cache(row))
    session = _session(row, decision)
    if session is not None:
        text.append("\n")
        text.append_text(session)
    dropped = [str(field) for field in decision.get("dropped") or []]
    if dropped:
        text.append("\ndropped (the upstream could not carry them): ", style="yellow")
        text.append(", ".join(dropped), style="yellow")
    if row.replay_of:
        text.append(f"\nreplay of {row.replay_of}", style="cyan")
    if row.client_closed:
        text.append("\nthe client hung up before the end", style="yellow")
    if row.error:
        text.append(f"\nerror: {row.error}", style="red")
    text.append(f"\nreason: {row.reason}", style="dim")
    return text


def _cache(row: RequestRow) -> Text:
    """`cache 2.9k read (74% of input) · 0 written · saved $0.0037`."""
    share = row.cached_tokens / row.prompt_tokens if row.prompt_tokens else None
    text = Text()
    text.append("cache ", style="dim")
    text.append(f"{count(row.cached_tokens)} read", style="bold")
    if share is not None:
        text.append(f" ({percent(share)} of input)")
    text.append(f" · {count(row.cache_write_tokens)} written · saved ")
    text.append(money(row.cache_saved_usd), style="green" if row.cache_saved_usd else "")
    return text


def _session(row: RequestRow, decision: dict[str, Any]) -> Text | None:
    """`session ses_12 kept: same provider as the last turn`, from the decision or the column."""
    info = decision.get("session")
    if not isinstance(info, dict):
        info = {}
    session_id = info.get("id") or row.session
    if not session_id:
        return None
    text = Text()
    text.append("session ", style="dim")
    text.append(str(session_id), style="bold")
    if info.get("action"):
        text.append(f" {info['action']}", style="cyan")
    if info.get("detail"):
        text.append(f": {info['detail']}", style="dim")
    return text


def _options(options: list[dict[str, Any]]) -> Listing:
    columns = ("#", "provider/model", "local", "quality", "est cost", "latency", "score")
    rows = [
        (
            str(index),
            f"{option.get('provider')}/{option.get('model')}",
            "yes" if option.get("local") else "no",
            f"{option.get('quality', 0):.2f}",
            money(option.get("est_cost")),
            millis(option.get("latency_ms")),
            f"{option.get('score', 0):.4f}",
            " ".join(f"{k}={v:.3f}" for k, v in (option.get("components") or {}).items()),
        )
        for index, option in enumerate(options, start=1)
    ]
    return Listing((*columns, "components"), rows, wrap={"components"}, aside="components")


def _rows(items: list[dict[str, Any]], columns: tuple[str, ...]) -> Listing:
    rows = [
        tuple("" if item.get(c) is None else str(item.get(c)) for c in columns) for item in items
    ]
    return Listing(columns, rows, wrap={"why", "note", "error"})


def _replays(replays: list[RequestRow]) -> Listing:
    columns = ("id", "time", "st", "provider/model", "latency", "cost")
    rows = [
        (
            row.id,
            stamp(row.ts)[11:],
            str(row.status),
            f"{row.provider}/{row.model}",
            millis(row.latency_ms),
            money(row.cost_usd),
        )
        for row in replays
    ]
    return Listing(columns, rows, wrap=set())


class Listing:
    """A table fitted when it is drawn, to the width it gets: names keep their whole width
    while they can and are middle-elided past it (Rich would cut their ends: `openai/gpt-4…`
    for both gpt-4o and gpt-4o-mini); the `wrap` columns take the rest and wrap. An `aside`
    column that would squeeze the names goes under the table, keyed by the first column."""

    GAP = 2
    WRAP_MIN = 16  # a wrapped column narrower than this reads one word a line
    NAME_MIN = 8

    def __init__(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        wrap: set[str],
        aside: str | None = None,
    ) -> None:
        self.columns = tuple(columns)
        self.rows = [tuple(row) for row in rows]
        self.wrap = [name in wrap for name in self.columns]
        self.aside = aside

    def widths(self, width: int) -> list[int]:
        natural = [
            max([len(name), *(len(row[i]) for row in self.rows)])
            for i, name in enumerate(self.columns)
        ]
        widths = list(natural)
        wrapped = [i for i, wraps in enumerate(self.wrap) if wraps]
        for i in wrapped:
            widths[i] = min(natural[i], self.WRAP_MIN)
        excess = sum(widths) + self.GAP * (len(widths) - 1) - width
        while excess > 0:  # narrow the widest name, a cell at a time
            names = [i for i, wraps in enumerate(self.wrap) if not wraps]
            widest = max(names, key=lambda i: widths[i])
            if widths[widest] <= self.NAME_MIN:
                break
            widths[widest] -= 1
            excess -= 1
        spare = -excess
        for i in wrapped:  # the wrapped columns share what is left, up to what they need
            extra = min(max(0, spare), natural[i] - widths[i])
            widths[i] += extra
            spare -= extra
        return widths

    def natural(self) -> int:
        widths = [
            max([len(n), *(len(r[i]) for r in self.rows)]) for i, n in enumerate(self.columns)
        ]
        return sum(widths) + self.GAP * (len(widths) - 1)

    def split(self) -> tuple[Listing, Listing]:
        """The table without its aside column, and that column keyed by the first."""
        at = self.columns.index(self.aside or "")
        keep = [i for i in range(len(self.columns)) if i != at]
        main = Listing(
            [self.columns[i] for i in keep],
            [[row[i] for i in keep] for row in self.rows],
            wrap={self.columns[i] for i in keep if self.wrap[i]},
        )
        side = Listing(
            (self.columns[0], self.columns[at]),
            [(row[0], row[at]) for row in self.rows],
            wrap={self.columns[at]},
        )
        return main, side

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.aside is not None and self.natural() > options.max_width:
            main, side = self.split()
            yield main
            yield side
            return
        widths = self.widths(options.max_width)
        table = Table(
            box=None, padding=(0, self.GAP, 0, 0), pad_edge=False, show_edge=False,
            header_style="bold", collapse_padding=True,
        )  # fmt: skip
        for name, width, wraps in zip(self.columns, widths, self.wrap, strict=True):
            table.add_column(
                name, width=width, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis"
            )
        for row in self.rows:
            table.add_row(
                *(
                    value if wraps else elide(value, width)
                    for value, width, wraps in zip(row, widths, self.wrap, strict=True)
                )
            )
        yield table
