"""FilterEditor: the `/` filter — container, provider, instance (exact) and free text, where
`instance:a` (or `i:a`, `c:app`, `p:openai`) fills its field."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from omen_tui.model import Filter


class FilterEditor(ModalScreen[Filter | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+u", "clear", "Clear all", priority=True),
    ]

    def __init__(self, current: Filter) -> None:
        super().__init__(classes="modal")
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Filter", classes="dialog-title")
            for field, hint in (
                ("text", "text in id, model, reason, error; or i:NAME c:NAME p:NAME"),
                ("container", "container name (exact)"),
                ("provider", "provider name (exact)"),
                ("instance", "Omen instance of the fleet (exact)"),
            ):
                with Horizontal(classes="field"):
                    yield Static(f"{field:<10}", classes="field-label")
                    yield Input(
                        getattr(self.current, field),
                        placeholder=hint,
                        id=f"filter-{field}",
                        compact=True,
                    )
            yield Static(
                "enter: apply · empty: no filter · ctrl+u: clear · esc: cancel",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        fields = {
            field: self.query_one(f"#filter-{field}", Input).value
            for field in ("container", "provider", "instance")
        }
        self.dismiss(Filter.parse(self.query_one("#filter-text", Input).value, **fields))

    def action_clear(self) -> None:
        self.dismiss(Filter())

    def action_cancel(self) -> None:
        self.dismiss(None)
