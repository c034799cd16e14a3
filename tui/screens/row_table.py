"""RowTableScreen: one table of rows read from the store, sized to the terminal, with the
selected row said in full in a strip underneath (the audit trail, what routing learnt).

A subclass names its strip (`STRIP`), sizes its columns (`_columns`, setting `_widths`) and
says a row as cells (`_cells`) and in full (`_in_full`); this class keeps the table, the
strip and the selection in step as rows arrive and the terminal resizes.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from omen_tui.widgets.live_table import Column, LiveTable

R = TypeVar("R")


class RowTableScreen(Screen[None], Generic[R]):
    STRIP: ClassVar[str]  # the id of the Static under the table
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, R] = {}
        self._widths: dict[str, int] = {}

    def _columns(self, width: int) -> list[Column]:
        raise NotImplementedError

    def _cells(self, row: R) -> tuple[str | Text, ...]:
        raise NotImplementedError

    def _in_full(self, row: R | None) -> Text:
        raise NotImplementedError

    def _fill(self) -> None:
        table = self.query_one(LiveTable)
        table.set_columns(self._columns(self.size.width or self.app.size.width))
        table.sync({key: self._cells(row) for key, row in self.rows.items()})
        self._show_line()

    def _show_line(self) -> None:
        key = self.query_one(LiveTable).selected_key
        row = self.rows.get(key) if key else None
        self.query_one(f"#{self.STRIP}", Static).update(self._in_full(row))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_line()

    def on_resize(self, event: events.Resize) -> None:
        if self.rows:
            self._fill()

    def action_back(self) -> None:
        self.dismiss(None)
