"""BudgetEditor: change a container's daily, weekly and monthly budgets, validated."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from omen_tui.format import money

PERIODS = ("daily", "weekly", "monthly")
RESET = "reset"

BudgetChanges = dict[str, str | None]


def parse_budget(text: str) -> tuple[str | None, str | None]:
    """(value, error) for one field: "" unchanged, "reset" back to the configured budget,
    or a non-negative amount in USD ("$" and thousands commas allowed)."""
    cleaned = text.strip().lstrip("$").replace(",", "").strip()
    if cleaned.lower() == RESET:
        return RESET, None
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None, f"{text.strip()!r} is not an amount"
    if not amount.is_finite():
        return None, f"{text.strip()!r} is not an amount"
    if amount < 0:
        return None, "must not be negative"
    return format(amount, "f"), None


def validate(values: dict[str, str]) -> tuple[BudgetChanges, dict[str, str]]:
    """The changes to send (None clears an override) and each field's error."""
    changes: BudgetChanges = {}
    errors: dict[str, str] = {}
    for period, text in values.items():
        if not text.strip():
            continue
        value, error = parse_budget(text)
        if error is not None:
            errors[period] = error
        else:
            changes[period] = None if value == RESET else value
    return changes, errors


class BudgetEditor(ModalScreen[BudgetChanges | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, container: str, current: dict[str, float | None]) -> None:
        super().__init__(classes="modal")
        self.container = container
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Budgets of {self.container}", classes="dialog-title")
            for period in PERIODS:
                limit = self.current.get(period)
                now = money(limit) if limit is not None else "no limit"
                with Horizontal(classes="field"):
                    yield Static(f"{period:<8}", classes="field-label")
                    yield Input(
                        placeholder=f"now {now}", id=period, classes="field-input", compact=True
                    )
                yield Static("", id=f"{period}-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", variant="primary", id="apply", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
            yield Static(
                "USD · empty: unchanged · reset: back to the configured budget · "
                "enter: apply · esc: cancel",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#daily", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply":
            self._apply()
        else:
            self.dismiss(None)

    def _apply(self) -> None:
        values = {period: self.query_one(f"#{period}", Input).value for period in PERIODS}
        changes, errors = validate(values)
        for period in PERIODS:
            self._error(period, errors.get(period, ""))
        if errors:
            self.query_one(f"#{next(iter(errors))}", Input).focus()
            return
        if not changes:
            self._error("daily", "type at least one new budget")
            return
        self.dismiss(changes)

    def _error(self, period: str, message: str) -> None:
        error = self.query_one(f"#{period}-error", Static)
        error.update(message)
        error.display = bool(message)

    def action_cancel(self) -> None:
        self.dismiss(None)
