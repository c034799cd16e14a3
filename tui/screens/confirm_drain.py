"""ConfirmDrain: the confirmation before draining or undraining an endpoint."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmDrain(ModalScreen[str | None]):
    """Dismissed with the reason ("" for none) when confirmed, None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, provider: str, endpoint: str, drained: bool) -> None:
        super().__init__(classes="modal")
        self.provider = provider
        self.endpoint = endpoint
        self.drained = drained  # what confirming does: True drains, False undrains

    def compose(self) -> ComposeResult:
        target = f"{self.provider}/{self.endpoint}"
        verb = "Drain" if self.drained else "Undrain"
        with Vertical(classes="dialog"):
            yield Static(f"{verb} {target}?", classes="dialog-title")
            if self.drained:
                yield Static(
                    "New requests stop going there at once; requests in flight finish. "
                    "The drain persists across restarts until undrained.",
                    classes="dialog-text",
                )
                yield Input(
                    placeholder="reason (optional), e.g. driver update", id="reason", compact=True
                )
            else:
                yield Static("Routing sends new requests there again.", classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    verb, variant="error" if self.drained else "primary", id="confirm", compact=True
                )
                yield Button("Cancel", id="cancel", compact=True)
            yield Static("enter: confirm · esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        focus = "#reason" if self.drained else "#confirm"
        self.query_one(focus).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            reason = self.query_one("#reason", Input).value.strip() if self.drained else ""
            self.dismiss(reason)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
