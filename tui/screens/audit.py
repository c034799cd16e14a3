"""AuditScreen: the audit trail — who did what, newest first: drains, budget changes, replays,
keys made and revoked, config reloads and budget alerts, each with the key or the signed-in
operator (and the role they acted as) that did it.

It reads the store, so it works with the daemon down, in `--readonly` and for a viewer. It
reads again every poll interval while open, the next read scheduled only once the last one is
shown (as the views poll); the selected row is shown whole in the strip under the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Footer, Static

from omen_store import AuditRow, StoreError, StoreReader
from omen_tui.format import clock, elide, stamp
from omen_tui.model.audit import (
    AUDIT_LIMIT,
    LEAST,
    change,
    is_system,
    read_audit,
    who,
    who_in_full,
    widths,
)
from omen_tui.screens.row_table import RowTableScreen
from omen_tui.widgets.live_table import Column, LiveTable

LABELS = {"time": "time", "who": "who", "action": "action", "target": "target", "change": "change"}
ACTION_STYLES = {
    "drain": "magenta",
    "undrain": "magenta",
    "key_revoke": "red",
    "budget_alert": "yellow",
}


class AuditScreen(RowTableScreen[AuditRow]):
    STRIP = "audit-line"
    DEFAULT_CSS = """
    AuditScreen #audit-summary { height: auto; padding: 0 1; }
    AuditScreen #audit { padding-left: 1; scrollbar-size-vertical: 1;
                         scrollbar-gutter: stable; overflow-x: hidden; }
    AuditScreen #audit-line { height: auto; min-height: 3; max-height: 6; padding: 0 1;
                              background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the audit trail again now"),
    ]

    def __init__(
        self,
        open_store: Callable[[], StoreReader],
        *,
        interval: float,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        """`interval`: seconds between reads (the console's poll interval); none while
        `paused()` says the operator paused polling."""
        super().__init__()
        self.open_store = open_store
        self.interval = interval
        self.paused = paused
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("reading the audit trail…", style="dim"), id="audit-summary")
        yield LiveTable(self._columns(80), id="audit", cell_padding=0)
        yield Static(id="audit-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()
        self._load()

    def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def action_reload(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._load()

    def _tick(self) -> None:
        self._timer = None
        if self.paused():
            self._again()
        else:
            self._load()

    def _again(self) -> None:
        self._timer = self.set_timer(self.interval, self._tick, name="audit")

    @work(thread=True, exit_on_error=False, group="audit", exclusive=True)
    def _load(self) -> None:
        try:
            rows: list[AuditRow] | str = read_audit(self.open_store())
        except StoreError as exc:
            rows = str(exc)
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[AuditRow] | str) -> None:
        if not self.is_attached:  # closed while the store was read
            return
        if self._timer is None:
            self._again()
        summary = self.query_one("#audit-summary", Static)
        if isinstance(rows, str):
            summary.update(Text(f"cannot read the audit trail: {rows}", style="red"))
            return
        self.rows = {str(row.id): row for row in rows}
        summary.update(self._summary())
        self._fill()

    def _summary(self) -> Text:
        rows = list(self.rows.values())
        text = Text()
        text.append("Audit trail", style="bold")
        if not rows:
            text.append(
                "  nothing yet: drains, budget changes, replays, keys and reloads appear here",
                style="dim",
            )
            return text
        people = {row.actor for row in rows if row.role}
        keys = {row.actor for row in rows if not row.role and not is_system(row)}
        text.append(f"  {len(rows)} newest")
        if len(rows) >= AUDIT_LIMIT:
            text.append(f" (the last {AUDIT_LIMIT})", style="dim")
        by = f"{_many(len(people), 'operator')}, {_many(len(keys), 'key')}"
        text.append(f"  by {by}", style="dim")
        text.append(f"  newest {clock(rows[0].ts)}", style="dim")
        return text

    def _cells(self, row: AuditRow) -> tuple[str | Text, ...]:
        return cells(row, self._widths)

    def _in_full(self, row: AuditRow | None) -> Text:
        return in_full(row)

    def _columns(self, width: int) -> list[Column]:
        rows = self.rows.values()
        widest = {
            "who": max([len(LABELS["who"]), *(len(who(r)) for r in rows)]),
            "action": max([len(LABELS["action"]), *(len(r.action) for r in rows)]),
            "target": max([len(LABELS["target"]), *(len(r.target) for r in rows)]),
        }
        self._widths = widths(max(LEAST, width - 2), widest)  # less padding and scrollbar
        return [Column(key, LABELS[key], size + 1) for key, size in self._widths.items()]


def _many(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def cells(row: AuditRow, sized: dict[str, int]) -> tuple[str | Text, ...]:
    """One row's cells, each middle-elided to its column's width."""
    person = bool(row.role)
    values: dict[str, str | Text] = {
        "time": Text(stamp(row.ts)[5:16], style="dim"),
        "who": Text(
            elide(who(row), sized["who"]),
            style="bold" if person else "dim" if is_system(row) else "",
        ),
        "action": Text(elide(row.action, sized["action"]), style=ACTION_STYLES.get(row.action, "")),
        "target": elide(row.target, sized["target"]),
        "change": elide(change(row.before, row.after), sized.get("change", 0)),
    }
    return tuple(values[key] for key in sized)


def in_full(row: AuditRow | None) -> Text:
    """The selected row whole: when (with the zone), what on what, who, what changed, why."""
    if row is None:
        return Text("no audit row selected", style="dim")
    text = Text()
    zone = time.strftime("%Z", time.localtime(row.ts))
    text.append(f"{stamp(row.ts)} {zone}  ", style="dim")
    text.append(row.action, style=ACTION_STYLES.get(row.action, "bold"))
    text.append(f" {row.target}", style="bold")
    if row.instance:
        text.append(f"  through instance {row.instance}", style="dim")
    text.append("\nby ")
    text.append(who_in_full(row), style="bold" if row.role else "")
    what = change(row.before, row.after)
    text.append("\n" + (what or "nothing recorded before or after"), style="" if what else "dim")
    if row.detail:
        text.append(f"\ndetail: {row.detail}", style="dim")
    return text
