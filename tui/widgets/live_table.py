"""LiveTable: a DataTable that a poll diffs into — fixed column widths, no full rebuilds.

`sync()` removes rows that went away, updates only the cells that changed (never
re-measuring a column), adds new rows, and reorders only when the order changed. The
selected row stays selected by key; a cursor on the first row follows new rows arriving
on top (a live feed).
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
    # Home/End go to the first/last row (the newest decision), as in k9s and htop.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(
        self, columns: Sequence[Column], *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", cell_padding=1)
        self._column_keys = [column.key for column in columns]
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._order: list[str] = []
        for column in columns:
            self.add_column(column.label, width=column.width, key=column.key)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        value = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        return None if value is None else str(value)

    def sync(self, rows: Mapping[str, Cells]) -> bool:
        """Make the table show `rows`, in their order; True if anything changed."""
        selected = self.selected_key
        on_top = self.cursor_row == 0
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
            self._restore(selected, on_top)
        return changed

    def _restore(self, selected: str | None, on_top: bool) -> None:
        if not self.row_count:
            return
        if on_top or selected is None or selected not in self._cells:
            self.move_cursor(row=0 if on_top else min(self.cursor_row, self.row_count - 1))
        else:
            self.move_cursor(row=self.get_row_index(selected))


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
