"""OmenConsole: the operator console — four numbered views over the store, actions via the
admin API.

Polling follows Dolphie: one thread worker reads what the active view needs, the UI applies
the result in one batch, and only then is the next poll scheduled, so a slow store or daemon
never piles up polls. The operator's actions (drain, budget, replay) are in `tui.actions`;
in a fleet they go to whichever of the daemons given answers (`tui.client`). Who did what is
the audit screen's (`A`), read from the store like the views.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Static
from textual.worker import Worker, WorkerState

from omen_tui.actions import AdminActions
from omen_tui.client import AdminClient, Credential
from omen_tui.messages import (
    RefreshRequested,
)
from omen_tui.model import VIEWS, DaemonState, Filter, Poller, Snapshot
from omen_tui.screens.audit import AuditScreen
from omen_tui.screens.filter import FilterEditor
from omen_tui.screens.help import HelpScreen
from omen_tui.views.base import ConsoleView
from omen_tui.views.gpu import GpuView
from omen_tui.views.overview import OverviewView
from omen_tui.views.providers import ProvidersView
from omen_tui.views.routing import RoutingView
from omen_tui.widgets.daemon_status import DaemonStatus
from omen_tui.widgets.live_table import LiveTable
from omen_tui.widgets.view_tabs import TITLES, ViewTabs


class OmenConsole(AdminActions):
    CSS_PATH = "app.tcss"
    TITLE = "Omen console"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(number), f"show_view('{view}')", TITLES[view], show=False)
            for number, view in enumerate(VIEWS, start=1)
        ),
        Binding("slash", "filter", "Filter"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("A", "audit", "Audit", tooltip="Who did what: the audit trail"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("colon", "command_palette", "Commands", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        # Reached only when the view on screen does not offer the action (or it is off):
        # they say why instead of doing nothing.
        Binding("d", "unavailable('drain')", show=False),
        Binding("b", "unavailable('budget')", show=False),
        Binding("r", "unavailable('replay')", show=False),
    ]

    def __init__(
        self,
        database: Path | str,
        url: str | Sequence[str],
        admin_key: Credential,
        readonly: bool = False,
        poll_interval: float = 2.0,
        *,
        client: AdminClient | None = None,
        clock: Callable[[], float] = time.time,
        time_zone: str = "UTC",
    ) -> None:
        super().__init__()
        self.database = database if isinstance(database, str) else Path(database)
        self.url = url
        self.readonly = readonly
        self.poll_interval = poll_interval
        self.client = client or AdminClient(url, admin_key)
        self.clock = clock
        self.poller = Poller(self.database, self.client, tz=ZoneInfo(time_zone), clock=clock)
        self.daemon: DaemonState | None = None
        self.filter = Filter()
        self.paused = False
        self.view_name = VIEWS[0]
        self.last_snapshot: Snapshot | None = None
        self._polling = False
        self._poll_again = False
        self._timer: Timer | None = None

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="header"):
            yield ViewTabs(id="tabs")
            yield DaemonStatus(id="daemon-status")
        yield Static(id="banner")
        with ContentSwitcher(initial=VIEWS[0], id="views"):
            yield OverviewView(readonly=self.readonly)
            yield RoutingView(readonly=self.readonly)
            yield ProvidersView(readonly=self.readonly)
            yield GpuView(readonly=self.readonly)
        yield Footer()

    def on_mount(self) -> None:
        self._show_header()
        self._focus_view()
        self.poll_now()

    def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.client.close()
        self.poller.close()

    @property
    def main(self) -> Screen[Any]:
        """The screen with the views (dialogs and drill-downs stack above it)."""
        return self.screen_stack[0]

    @property
    def active_view(self) -> ConsoleView:
        return self.main.query_one(f"#{self.view_name}", ConsoleView)

    @property
    def is_polling(self) -> bool:
        """A poll is running or due at once (tests wait for this to settle)."""
        return self._polling or self._poll_again

    def _focus_view(self) -> None:
        self.active_view.query_one(LiveTable).focus()

    def _show_header(self) -> None:
        now = self.last_snapshot.now if self.last_snapshot else None
        self.main.query_one(DaemonStatus).show(
            self.daemon, paused=self.paused, filt=self.filter, now=now
        )

    # -- polling ---------------------------------------------------------------------------

    def poll_now(self) -> None:
        """Poll at once, or right after the poll in progress."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self.screen_stack:  # shutting down
            return
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        self._poll(self.view_name, self.filter, self.active_view.selection)

    @work(thread=True, group="poll", exit_on_error=False, description="poll")
    def _poll(self, view: str, filt: Filter, selection: str | None) -> Snapshot:
        return self.poller.fetch(view, filt, selection)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "poll" or not worker.is_finished:
            return
        self._polling = False
        if not self.screen_stack:  # shutting down
            return
        if event.state == WorkerState.SUCCESS and isinstance(worker.result, Snapshot):
            self._apply(worker.result)
        elif event.state == WorkerState.ERROR:
            self._banner(f"reading the store failed: {worker.error}")
        if self._poll_again:  # the view or filter changed meanwhile
            self._poll_again = False
            self.poll_now()
        elif not self.paused:
            self._timer = self.set_timer(self.poll_interval, self.poll_now, name="poll")

    def _apply(self, snapshot: Snapshot) -> None:
        was = (self.actions_ok, self.viewer)
        self._moved(self.daemon, snapshot.daemon)
        self.daemon = snapshot.daemon
        self.last_snapshot = snapshot
        with self.batch_update():
            self._show_header()
            self._banner(snapshot.store_error)
            for view in self.main.query(ConsoleView):
                view.apply(snapshot)
                view.actions_ok = snapshot.daemon.actions_ok
                view.viewer = snapshot.daemon.viewer
        if was != (self.actions_ok, self.viewer):
            self.refresh_bindings()

    def _moved(self, before: DaemonState | None, now: DaemonState) -> None:
        """Say so when the daemon talked to stopped answering and another one of the fleet
        took over: actions now go there."""
        if before is None or not now.reachable or before.url == now.url:
            return
        name = f"{now.instance} ({now.url})" if now.instance else now.url
        self.notify(
            f"Actions now go to {name}: {before.url} stopped answering",
            title="Daemon changed",
            severity="warning",
            timeout=6,
        )

    def _banner(self, message: str | None) -> None:
        banner = self.main.query_one("#banner", Static)
        banner.update(message or "")
        banner.display = bool(message)

    @on(RefreshRequested)
    def _refresh_requested(self) -> None:
        self.poll_now()  # an explicit selection: worth one read even while paused

    # -- keys --------------------------------------------------------------------------------

    def action_show_view(self, view: str) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if view == self.view_name:
            return
        self.view_name = view
        self.main.query_one(ContentSwitcher).current = view
        self.main.query_one(ViewTabs).active = view
        self._focus_view()
        self.refresh_bindings()
        self.poll_now()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
            self.notify("Polling paused; press p to resume", timeout=3)
        else:
            self.poll_now()
        self._show_header()

    def action_refresh(self) -> None:
        self.poll_now()

    def action_filter(self) -> None:
        self.push_screen(FilterEditor(self.filter), self._set_filter)

    def _set_filter(self, filt: Filter | None) -> None:
        if filt is None or filt == self.filter:
            return
        self.filter = filt
        for view in self.main.query(ConsoleView):
            view.set_filter(filt)
        self._show_header()
        self.poll_now()

    def action_clear_filter(self) -> None:
        if self.filter.active:
            self._set_filter(Filter())
            self.notify("Filter cleared", timeout=2)

    def action_audit(self) -> None:
        """The audit trail, from the store: read-only, so also in --readonly and for a
        viewer, and with the daemon down."""
        if isinstance(self.screen, AuditScreen):
            return
        self.push_screen(
            AuditScreen(self.poller.store, interval=self.poll_interval, paused=lambda: self.paused)
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The audit trail already open: no second one, and no footer entry for it.
        open_already = bool(self.screen_stack) and isinstance(self.screen, AuditScreen)
        return not (action == "audit" and open_already)

    def action_help(self) -> None:
        hidden = "--readonly" if self.readonly else "viewer role" if self.viewer else None
        self.push_screen(HelpScreen(hidden=hidden, url=self.client.where))

    # -- command palette ---------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for number, view in enumerate(VIEWS, start=1):
            yield SystemCommand(
                f"View {number}: {TITLES[view]}",
                f"Switch to the {TITLES[view]} view",
                partial(self.action_show_view, view),
            )
        yield SystemCommand(
            "Filter", "Filter by text, container, provider or instance", self.action_filter
        )
        if self.filter.active:
            yield SystemCommand(
                "Clear filter", "Show everything", partial(self._set_filter, Filter())
            )
        yield SystemCommand(
            "Resume polling" if self.paused else "Pause polling",
            "Freeze or resume the live data",
            self.action_toggle_pause,
        )
        yield SystemCommand("Refresh now", "Poll the store and the daemon now", self.poll_now)
        yield SystemCommand(
            "Audit trail",
            "Who did what: drains, budgets, replays, keys, reloads",
            self.action_audit,
        )
        if not (self.readonly or self.viewer):
            active = self.active_view
            for action, title in (
                ("drain", "Drain/undrain the selected endpoint"),
                ("budget", "Adjust the selected container's budget"),
                ("replay", "Replay the selected request"),
            ):
                if action in active.ACTIONS:
                    yield SystemCommand(
                        title, "Through the admin API", getattr(active, f"action_{action}")
                    )
        yield SystemCommand("Help", "Keys and what the header means", self.action_help)
        yield from super().get_system_commands(screen)


def run(
    database: Path | str,
    url: str | Sequence[str],
    admin_key: Credential,
    readonly: bool,
    mouse: bool,
    *,
    time_zone: str = "UTC",
) -> None:
    """Run the console in this terminal until the operator quits.

    `time_zone` is the daemon's `server.time_zone`, the calendar its budgets count in.
    `url`: the daemon, or a fleet's daemons (a list, or comma-separated): actions go to the
    first that answers, then to the next when it stops answering. `admin_key`: a key, or a
    function giving the operator's current token (asked before each call to the daemon).
    """
    OmenConsole(database, url, admin_key, readonly, time_zone=time_zone).run(mouse=mouse)
