"""AdminActions: what the operator can do to the daemon — drain, budget, replay, judge a
replay — as flows, and the screens that look at routing's learning (learnt, what-if).

Each flow asks first (a dialog), calls the admin API off the UI thread, says what happened,
and has the console poll at once. `--readonly` hides the keys, and so does a sign-in the daemon
gives a viewer role; without a reachable daemon and an admin key they are greyed out, and
pressing one says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from textual import events, on, work
from textual.app import App

from omen_tui.client import AdminClient, AdminError
from omen_tui.messages import BudgetRequested, DrainRequested, ReplayRequested, RequestOpened
from omen_tui.model import DaemonState, Poller
from omen_tui.screens.budget import BudgetEditor
from omen_tui.screens.confirm_drain import ConfirmDrain
from omen_tui.screens.learnt import LearntScreen
from omen_tui.screens.replay_choice import ReplayChoice
from omen_tui.screens.replay_result import ReplayResult, Verdict
from omen_tui.screens.request_detail import RequestDetail
from omen_tui.screens.whatif import WhatIfScreen

ACTION_NAMES = {
    "drain": "drain",
    "budget": "budget change",
    "replay": "replay",
    "feedback": "verdict",
}
WHERE = {"drain": "3 Providers or 4 GPU", "budget": "1 Overview", "replay": "2 Routing"}


class AdminActions(App[None]):
    client: AdminClient
    poller: Poller
    readonly: bool
    daemon: DaemonState | None

    def poll_now(self) -> None:
        raise NotImplementedError

    def on_key(self, event: events.Key) -> None:
        """ctrl+p opens the command palette, as the help says: Textual binds it only when no
        binding opens the palette, and the console's `:` does. Without it, letters typed for
        the palette reach the view (the Overview's `w` opens what-if). A key handler, not a
        binding, so the footers stay as they are."""
        if event.key == "ctrl+p":
            event.stop()
            self.action_command_palette()

    @property
    def actions_ok(self) -> bool:
        return self.daemon is not None and self.daemon.actions_ok

    @property
    def viewer(self) -> bool:
        """The daemon gives the console's sign-in a viewer role: it may look, not act."""
        return self.daemon is not None and self.daemon.viewer

    def action_unavailable(self, action: str) -> None:
        self._allowed(action, here=False)

    def _allowed(self, action: str, *, here: bool = True) -> bool:
        """Whether an admin action may run now; if not, tell the operator why."""
        what = ACTION_NAMES[action]
        if self.readonly:
            self.notify(f"Read-only console (--readonly): no {what}", severity="warning")
        elif self.daemon is not None and self.viewer:
            self.notify(
                f"No {what}: {self.daemon.user or 'this sign-in'} has the viewer role, which "
                "may look but not act; an admin group's member may",
                title="Viewer",
                severity="warning",
                timeout=6,
            )
        elif self.daemon is None or not self.daemon.reachable:
            self.notify(
                f"No {what}: the daemon is unreachable at {self.client.where}. "
                "The views show the store's history; actions need the daemon.",
                title="Actions disabled",
                severity="error",
                timeout=6,
            )
        elif not self.daemon.admin:
            self.notify(
                f"No {what}: {self.daemon.message or 'the admin API refused the key'}",
                title="Actions disabled",
                severity="error",
                timeout=6,
            )
        elif not here:
            self.notify(f"Select one in {WHERE[action]} to {action} it", severity="warning")
        else:
            return True
        return False

    @on(DrainRequested)
    def _drain_requested(self, message: DrainRequested) -> None:
        if self._allowed("drain"):
            self._drain(message.provider, message.endpoint, message.drained)

    @work(group="actions", exit_on_error=False)
    async def _drain(self, provider: str, endpoint: str, drained: bool) -> None:
        reason = await self.push_screen_wait(ConfirmDrain(provider, endpoint, drained))
        if reason is None:
            return
        if drained:
            call = partial(self.client.drain, provider, endpoint, reason or None)
        else:
            call = partial(self.client.undrain, provider, endpoint)
        if await self._admin(call, "drain") is None:
            return
        verb = "drained: no new requests go there" if drained else "undrained"
        self.notify(f"{provider}/{endpoint} {verb}", title="Done")
        self.poll_now()

    @on(BudgetRequested)
    def _budget_requested(self, message: BudgetRequested) -> None:
        if self._allowed("budget"):
            self._budget(message.container, message.current)

    @work(group="actions", exit_on_error=False)
    async def _budget(self, container: str, current: dict[str, float | None]) -> None:
        changes = await self.push_screen_wait(BudgetEditor(container, current))
        if not changes:
            return
        result = await self._admin(partial(self.client.set_budget, container, changes), "budget")
        if result is None:
            return
        before, after = result.get("before") or {}, result.get("after") or {}
        lines = [f"{period}: {before.get(period)} → {after.get(period)}" for period in changes]
        self.notify("\n".join(lines), title=f"Budgets of {container}")
        self.poll_now()

    @on(ReplayRequested)
    def _replay_requested(self, message: ReplayRequested) -> None:
        if self._allowed("replay"):
            self._replay(message.request_id, message.provider, message.model)

    @work(group="actions", exit_on_error=False)
    async def _replay(self, request_id: str, provider: str | None, model: str | None) -> None:
        choice = await self.push_screen_wait(ReplayChoice(request_id, provider, model))
        if choice is None:
            return
        self.notify(f"Replaying {request_id} on {choice.describe()}…", timeout=3)
        call = partial(self.client.replay, request_id, choice.mode, choice.provider, choice.model)
        result = await self._admin(call, "replay")
        if result is None:
            return
        prompt = await asyncio.to_thread(self._prompt_of, request_id)
        self.poll_now()
        await self.push_screen(ReplayResult(result, choice.describe(), prompt, judge=self._judge))

    @work(group="actions", exit_on_error=False)
    async def _judge(self, verdict: Verdict) -> None:
        """Better: the replay scores 1 and the original 0; worse: the reverse. Each goes to
        the outcome statistics of the model that answered it (a later verdict replaces)."""
        recorded: list[str] = []
        for request_id, score in verdict.scores():
            call = partial(self.client.feedback, request_id, score)
            if await self._admin(call, "feedback") is None:
                if recorded:  # the verdict is half in: say which half
                    self.notify(f"Only feedback {recorded[0]} was recorded", severity="warning")
                return
            recorded.append(f"{score:g} for {request_id}")
        self.notify(verdict.describe(), title="Verdict recorded")
        self.poll_now()

    def _prompt_of(self, request_id: str) -> str | None:
        """The last user message of a stored request, for the replay comparison."""
        try:
            body = self.poller.store().get_request_body(request_id)
        except Exception:
            return None
        return last_user_message(body)

    async def _admin(
        self, call: Callable[[], dict[str, Any]], action: str
    ) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(call)
        except AdminError as exc:
            self.notify(exc.message, title=f"{ACTION_NAMES[action]} failed", severity="error")
            return None

    # -- looking at routing's learning --------------------------------------------------------

    def action_learnt(self) -> None:
        """What routing learnt, from the store (so also with the daemon down)."""
        self.push_screen(LearntScreen(self.poller.store))

    def action_whatif(self) -> None:
        """The stored decisions re-routed by the daemon; the screen says why if it cannot."""
        self.push_screen(WhatIfScreen(self.client))

    @on(RequestOpened)
    def _open_request(self, message: RequestOpened) -> None:
        self.push_screen(
            RequestDetail(
                message.request_id,
                self.poller.store,
                readonly=self.readonly or self.viewer,
                actions_ok=lambda: self.actions_ok,
            )
        )


def last_user_message(body: dict[str, Any] | None, limit: int = 300) -> str | None:
    if not body:
        return None
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            text = " ".join(str(content or "").split())
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return None
