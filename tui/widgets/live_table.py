"""LiveTable: a DataTable that a poll diffs into — fixed column widths, no full rebuilds.

`sync()` removes rows that went away, updates only the cells that changed (never
re-measuring a column), adds new rows, and reorders only when the order changed. The
selected row stays selected by key while rows arrive above it; only an operator who went
to the top on purpose (g/Home, or a new filter) follows the feed there. Keys as in k9s and
less: j/k, g/G, Home/End, PgUp/PgDn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable

Cells = Sequence[str | Text]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int


class _KeyedText(Text):
    """A first-column cell that knows its row, so `sort` can order rows by key."""

    row_key: str = ""


class LiveTable(DataTable[Any]):
    DEFAULT_CSS = """
    LiveTable { height: 1fr; }
    """
    # Home/End and g/G go to the first/last row (the newest decision), as in k9s and less.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home,g", "scroll_top", "Top", show=False),
        Binding("end,G", "scroll_bottom", "Bottom", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        id: str | None = None,
        classes: str | None = None,
        cell_padding: int = 1,
    ) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", cell_padding=cell_padding)
        self._columns: tuple[Column, ...] = ()
        self._column_keys: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._order: list[str] = []
        self._syncing = False
        self._keep: str | None = None  # the selection across a change of columns
        self.following = True  # on top, moving with the feed: until the operator moves
        self.set_columns(columns)

    def set_columns(self, columns: Sequence[Column]) -> bool:
        """Lay the table out anew (the terminal was resized); the rows come back at the next
        `sync`, the selection with them. False when nothing changed."""
        columns = tuple(columns)
        if columns == self._columns:
            return False
        if self._columns:
            self._keep = self.selected_key
            self._syncing = True
            try:
                self.clear(columns=True)
            finally:
                self._syncing = False
        self._columns = columns
        self._column_keys = [column.key for column in columns]
        self._cells = {}
        self._order = []
        for column in columns:
            self.add_column(column.label, width=column.width, key=column.key)
        return True

    def follow(self) -> None:
        """Go to the top and stay there as rows arrive (g, Home, a new filter)."""
        self.following = True
        if self.row_count:
            self._move(0)

    def action_scroll_top(self) -> None:
        self.follow()

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if not self._syncing and old.row != new.row:
            self.following = False  # the operator (keys, mouse) moved: stay on that row

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        value = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        return None if value is None else str(value)

    def sync(self, rows: Mapping[str, Cells]) -> bool:
        """Make the table show `rows`, in their order; True if anything changed."""
        self._syncing = True
        try:
            return self._sync(rows)
        finally:
            self._syncing = False

    def _sync(self, rows: Mapping[str, Cells]) -> bool:
        selected = self.selected_key if self.row_count else self._keep
        self._keep = None
        changed = False
        for key in [k for k in self._cells if k not in rows]:
            self.remove_row(key)
            del self._cells[key]
            changed = True
        for key, cells in rows.items():
            new = _as_text(key, cells)
            old = self._cells.get(key)
            if old is None:
                self.add_row(*new, key=key)
                changed = True
            elif not all(_same(a, b) for a, b in zip(old, new, strict=True)):
                for column, before, after in zip(self._column_keys, old, new, strict=True):
                    if not _same(before, after):
                        self.update_cell(key, column, after)
                changed = True
            self._cells[key] = new
        order = list(rows)
        if order != self._order:
            self._order = order
            position = {key: index for index, key in enumerate(order)}
            self.sort(self._column_keys[0], key=lambda cell: position[cell.row_key])
            self._restore(selected)
        return changed

    def _restore(self, selected: str | None) -> None:
        if not self.row_count:
            return
        if self.following or selected is None or selected not in self._cells:
            self._move(0 if self.following else min(self.cursor_row, self.row_count - 1))
        else:
            self._move(self.get_row_index(selected))

    def _move(self, row: int) -> None:
        syncing, self._syncing = self._syncing, True
        try:
            self.move_cursor(row=row)
        finally:
            self._syncing = syncing


def _as_text(key: str, cells: Cells) -> tuple[Text, ...]:
    texts = [cell if isinstance(cell, Text) else Text(cell) for cell in cells]
    first = _KeyedText(texts[0].plain, style=texts[0].style, spans=list(texts[0].spans))
    first.row_key = key
    return (first, *texts[1:])


def _same(a: Text, b: Text) -> bool:
    # Text.__eq__ ignores the base style, which is how most cells carry their colour.
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans


class OpenableTable(LiveTable):
    """A LiveTable whose Enter opens the selected row (shown in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", tooltip="Open the selected row in full"),
    ]
