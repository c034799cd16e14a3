"""ReplayResult: the original request and its replay side by side; `+` / `-` judge the replay
better or worse than the original, as client feedback on both, for the outcome statistics.

Styles go on spans (`append(..., style=)`), never on a Text's base style: a base style
reaches everything appended after it, which once drew both panels bold and underlined."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from omen_tui.format import count, millis, money, status_text


@dataclass(frozen=True, slots=True)
class Verdict:
    """The operator's judgement of a replay against its original."""

    original_id: str
    replay_id: str
    better: bool  # the replay's answer is the better one
    original_route: str
    replay_route: str

    def scores(self) -> tuple[tuple[str, float], tuple[str, float]]:
        """Feedback for each: 1 for the better answer, 0 for the worse."""
        replay = 1.0 if self.better else 0.0
        return (self.replay_id, replay), (self.original_id, 1.0 - replay)

    def describe(self) -> str:
        (replay_id, replay), (original_id, original) = self.scores()
        word = "better" if self.better else "worse"
        return (
            f"Replay judged {word}: feedback {replay:g} for {replay_id} ({self.replay_route}), "
            f"{original:g} for {original_id} ({self.original_route})"
        )


class ReplayResult(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("plus", "judge(True)", "Replay better", tooltip="Feedback 1 replay, 0 original"),
        Binding("minus", "judge(False)", "Replay worse", tooltip="Feedback 0 replay, 1 original"),
        # The audit trail still opens, out of the footer: at 80 columns it would push out quit.
        Binding("A", "app.audit", "Audit", show=False),
    ]

    def __init__(
        self,
        result: dict[str, Any],
        mode: str,
        prompt: str | None = None,
        *,
        judge: Callable[[Verdict], object] | None = None,
    ) -> None:
        super().__init__()
        self.original: dict[str, Any] = result.get("original") or {}
        self.replay: dict[str, Any] = result.get("replay") or {}
        self.mode = mode
        self.prompt = prompt
        self.judge = judge

    def compose(self) -> ComposeResult:
        title = Text()
        title.append("Replay of ", style="bold")
        title.append(str(self.original.get("id", "?")))
        title.append(f" → {self.replay.get('request_id', '?')}", style="bold")
        title.append(f"  ({self.mode})", style="dim")
        yield Static(title, classes="summary")
        with Horizontal(id="comparison"):
            with VerticalScroll(classes="side-by-side", id="before"):
                yield Static(side("original", self.original, None, answer=None))
            with VerticalScroll(classes="side-by-side", id="after"):
                yield Static(
                    side("replay", self.replay, self.original, answer=self.replay.get("answer"))
                )
        if self.prompt:
            yield Static(Text.assemble(("prompt: ", "dim"), self.prompt), classes="detail-line")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "judge":
            return self.judge is not None
        return True

    def action_judge(self, better: bool) -> None:
        if self.judge is None:
            return
        why_not = unjudgeable(self.original, self.replay)
        if why_not:
            self.notify(why_not, title="Nothing to judge", severity="warning")
            return
        self.judge(
            Verdict(
                str(self.original["id"]),
                str(self.replay["request_id"]),
                better,
                _route(self.original),
                _route(self.replay),
            )
        )

    def action_back(self) -> None:
        self.dismiss(None)


def unjudgeable(original: dict[str, Any], replay: dict[str, Any]) -> str:
    """Why these two cannot be compared ("" when they can): feedback is on answers."""
    if not replay.get("request_id") or replay.get("status") != 200 or not replay.get("provider"):
        return "the replay got no answer; feedback is for answers"
    if not original.get("id") or original.get("status") != 200 or not original.get("provider"):
        return "the original got no answer; feedback is for answers"
    return ""


def _route(outcome: dict[str, Any]) -> str:
    return f"{outcome.get('provider')}/{outcome.get('model')}"


def side(
    title: str, outcome: dict[str, Any], baseline: dict[str, Any] | None, *, answer: Any
) -> Text:
    text = Text()
    text.append(title.upper(), style="bold underline")
    provider, model = outcome.get("provider"), outcome.get("model")
    route = f"{provider}/{model}" if provider else "(not routed)"
    if outcome.get("endpoint"):
        route += f"@{outcome['endpoint']}"
    text.append(f"\n{route}", style="bold")
    text.append("\nstatus   ")
    text.append_text(status_text(int(outcome.get("status") or 0)))
    text.append(f"\nlatency  {millis(_num(outcome.get('latency_ms')))}")
    text.append_text(_delta(outcome, baseline, "latency_ms"))
    prompt_tokens = _num(outcome.get("prompt_tokens")) or 0
    completion = _num(outcome.get("completion_tokens")) or 0
    text.append(f"\ntokens   {count(int(prompt_tokens))} in / {count(int(completion))} out")
    text.append(f"\ncost     {money(_num(outcome.get('cost_usd')), none='not known')}")
    text.append_text(_delta(outcome, baseline, "cost_usd"))
    if outcome.get("error"):
        text.append(f"\nerror    {outcome['error']}", style="red")
    if outcome.get("reason"):
        text.append(f"\nreason   {outcome['reason']}", style="dim")
    text.append("\n\nanswer\n", style="bold")
    if answer is None and baseline is None:
        text.append("(answers are not stored; only the replay's is shown)", style="dim")
    elif answer is None:
        text.append("(no answer)", style="dim")
    else:
        text.append(str(answer))
    return text


def _delta(outcome: dict[str, Any], baseline: dict[str, Any] | None, field: str) -> Text:
    if baseline is None:
        return Text()
    new, old = _num(outcome.get(field)), _num(baseline.get(field))
    if new is None or old is None or old == 0:
        return Text()
    change = (new - old) / old
    style = "green" if change < 0 else "red" if change > 0 else "dim"
    return Text(f"  {change:+.0%}", style=style)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
