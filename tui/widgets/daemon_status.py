"""DaemonStatus: the header's right side — daemon reachable or not (and, in a fleet, which
instance the console talks to: `● daemon up on a`), who the console acts as when an operator
signed in (`· ann@example.com (viewer)`), paused, filter, clock.

It fits in what the view tabs leave of the terminal's width: the clock goes first, then the
words shorten (`● up on a`, `⏸`), then the operator's e-mail gives up its middle (the role
stays), then the instance's name, then the filter is elided in the middle; the tabs never move.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from omen_tui.format import clock, elide
from omen_tui.model import DaemonState, Filter
from omen_tui.widgets.view_tabs import TITLES, tabs_for

PADDING = 1  # app.tcss: #daemon-status has one cell of right padding
NAME_MAX = 16  # an instance's name, middle-elided past this
WHO_SEPARATOR = " · "


class DaemonStatus(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._state: tuple[DaemonState | None, bool, Filter, float | None] = (
            None,
            False,
            Filter(),
            None,
        )
        self._shown: str | None = None

    def show(
        self, daemon: DaemonState | None, *, paused: bool, filt: Filter, now: float | None
    ) -> None:
        self._state = (daemon, paused, filt, now)
        self.refit()

    def refit(self) -> None:
        """Show the fullest status that fits beside the tabs at the terminal's width."""
        daemon, paused, filt, now = self._state
        width = self.app.size.width
        tabs = max(tabs_for(width, view).cell_len for view in TITLES)
        text = render_status(
            daemon, paused=paused, filt=filt, now=now, width=max(0, width - tabs - PADDING)
        )
        if text.markup != self._shown:
            self._shown = text.markup
            self.update(text)


def render_status(
    daemon: DaemonState | None,
    *,
    paused: bool,
    filt: Filter,
    now: float | None,
    width: int = 200,
) -> Text:
    """The status in at most `width` cells (the clock and long words dropped first)."""
    name = elide(daemon.instance, NAME_MAX) if daemon and daemon.instance else None
    who = _who(daemon, 200)
    for short, with_clock in ((False, True), (False, False), (True, True), (True, False)):
        text = _status(daemon, paused, filt, now if with_clock else None, short, None, name, who)
        if text.cell_len <= width:
            return text
    if who:
        bare = _status(daemon, paused, filt, None, True, None, name)
        fitted = _who(daemon, width - bare.cell_len - len(WHO_SEPARATOR))
        if fitted:
            return _status(daemon, paused, filt, None, True, None, name, fitted)
    # Still too wide: the instance's name gives up its middle, then goes; then the filter
    # gives up its middle (the daemon's state never goes).
    text = _status(daemon, paused, filt, None, True, None)
    room = width - text.cell_len - len(" on ")
    if name and room >= 3:
        return _status(daemon, paused, filt, None, True, None, elide(name, room))
    if text.cell_len <= width:
        return text
    rest = _status(daemon, paused, Filter(), None, True, None).cell_len
    room = width - rest - 2  # "/" and the space after it
    text = _status(daemon, paused, filt, None, True, max(room, 1))
    if text.cell_len > width:
        text = _status(daemon, paused, Filter(), None, True, None)
        if filt.active and text.cell_len + 2 <= width:
            text = Text.assemble(("/ ", "bold yellow"), text)
    return text


def _who(daemon: DaemonState | None, width: int) -> str | None:
    """`ann@example.com (viewer)` in at most `width` cells: the e-mail cut in the middle, then
    the role alone; None when nobody signed in is known (or nothing fits)."""
    if daemon is None or not daemon.reachable or not daemon.user:
        return None
    role = f" ({daemon.role})" if daemon.role else ""
    room = width - len(role)
    if room >= min(len(daemon.user), 5):
        return elide(daemon.user, room) + role
    if daemon.role and len(daemon.role) <= width:
        return daemon.role
    return None


def _status(
    daemon: DaemonState | None,
    paused: bool,
    filt: Filter,
    now: float | None,
    short: bool,
    filter_width: int | None,
    name: str | None = None,
    who: str | None = None,
) -> Text:
    text = Text()
    if filt.active:
        described = filt.describe()
        if filter_width is not None:
            described = elide(described, filter_width)
        text.append(f"/{described} ", style="bold yellow")
    if paused:
        text.append("⏸ " if short else "⏸ paused ", style="bold yellow")
    if daemon is None:
        text.append("…" if short else "… connecting", style="dim")
    elif not daemon.reachable:
        if short:
            text.append("✖ down", style="bold red")
        else:
            text.append("✖ daemon unreachable", style="bold red")
            if daemon.last_seen is not None:
                text.append(f", seen {clock(daemon.last_seen)}", style="red")
    else:
        style = "bold green" if daemon.admin else "green"
        text.append("● up" if short else "● daemon up", style=style)
        if name:
            text.append(" on ", style=style)
            text.append(name, style="bold")
        if who:
            text.append(WHO_SEPARATOR, style="dim")
            text.append(who, style="bold cyan")
        if not daemon.admin:
            text.append(" · no admin" if short else " · no admin access", style="yellow")
    if now is not None:
        text.append(f" {clock(now)}", style="dim")
    return text
