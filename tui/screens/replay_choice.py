"""ReplayChoice: how to re-send a stored request — same route, re-routed, or a named model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from omen_tui.client import ReplayMode


@dataclass(frozen=True, slots=True)
class Replay:
    request_id: str
    mode: ReplayMode
    provider: str | None = None
    model: str | None = None

    def describe(self) -> str:
        if self.mode == "same":
            return "the same route"
        if self.mode == "reroute":
            return "a fresh routing decision"
        return f"{self.provider or '?'}/{self.model or '?'}"


class ReplayChoice(ModalScreen[Replay | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, request_id: str, provider: str | None, model: str | None) -> None:
        super().__init__(classes="modal")
        self.request_id = request_id
        self.provider = provider
        self.model = model

    def compose(self) -> ComposeResult:
        route = f"{self.provider}/{self.model}" if self.provider else "its original model"
        with Vertical(classes="dialog"):
            yield Static(f"Replay {self.request_id}", classes="dialog-title")
            yield OptionList(
                Option(f"Same route — {route}", id="same"),
                Option("Re-route — let the router decide again", id="reroute"),
                Option("Another provider/model…", id="named"),
                id="replay-modes",
            )
            with Horizontal(classes="field", id="named-fields"):
                yield Input(
                    self.provider or "", placeholder="provider", id="provider", compact=True
                )
                yield Input(self.model or "", placeholder="model", id="model", compact=True)
            yield Static("", id="replay-error", classes="field-error")
            yield Static(
                "enter: replay · tab: edit provider/model · esc: cancel", classes="dialog-hint"
            )

    def on_mount(self) -> None:
        modes = self.query_one(OptionList)
        modes.highlighted = 0
        modes.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id == "named":
            self.query_one("#provider", Input).focus()
            return
        mode: ReplayMode = "same" if event.option.id == "same" else "reroute"
        self.dismiss(Replay(self.request_id, mode))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        provider = self.query_one("#provider", Input).value.strip()
        model = self.query_one("#model", Input).value.strip()
        if not provider and not model:
            error = self.query_one("#replay-error", Static)
            error.update("name a provider, a model, or both")
            error.display = True
            return
        self.dismiss(Replay(self.request_id, "named", provider or None, model or None))

    def action_cancel(self) -> None:
        self.dismiss(None)
