"""ConsoleView: what every numbered view shares — its actions' availability and the poll hook.

Actions that change the daemon (drain, budget, replay) are hidden in `--readonly` (like k9s
strips its dangerous actions) and for an operator signed in with a viewer role, and greyed
out while the daemon or its admin API cannot be reached; the app then explains why when the
key is pressed.
"""

from __future__ import annotations

from typing import ClassVar

from textual.containers import Vertical
from textual.reactive import var

from omen_tui.model import Filter, Snapshot


class ConsoleView(Vertical):
    ACTIONS: ClassVar[frozenset[str]] = frozenset()  # the ones that need the admin API

    actions_ok: var[bool] = var(False)
    viewer: var[bool] = var(False)  # the daemon gives the console's sign-in a viewer role

    def __init__(self, *, readonly: bool, id: str | None = None) -> None:
        super().__init__(id=id, classes="view")
        self.readonly = readonly
        self.filter = Filter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.ACTIONS:
            if self.readonly or self.viewer:
                return False
            if not self.actions_ok:
                return None
        return True

    def watch_actions_ok(self) -> None:
        self.refresh_bindings()

    def watch_viewer(self) -> None:
        self.refresh_bindings()

    def apply(self, snapshot: Snapshot) -> None:
        """Show a poll's result; called on the UI thread inside a batch update."""

    def set_filter(self, filt: Filter) -> None:
        """A new `/` filter: re-show what is held at once; the next poll brings the rest."""
        self.filter = filt

    @property
    def selection(self) -> str | None:
        """The selected row's key, which some polls need (the GPU history to read)."""
        return None
