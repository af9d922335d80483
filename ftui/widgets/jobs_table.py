"""A table of rows drawn line by line (Textual's Line API), for lists of thousands of jobs.

Textual's DataTable measures and renders every cell through Rich before it paints: about a
second for 10,000 rows, and a tenth of a second for the first screenful. This table keeps only
the rows' keys, asks for a row's cells when the row is first drawn (then keeps them), sizes
columns from string lengths, and builds only the lines on screen, so a list of any length costs
what its visible part does. The header stays put while rows scroll.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text
MAX_COLUMN_WIDTH = 60
GAP = 2
SIZE_FROM = 200  # rows whose cells set the column widths up front (others widen them as drawn)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


@lru_cache(maxsize=64)
def _parse_style(style: str) -> Style:
    return Style.parse(style)


def _cell_style(cell: Text) -> Style:
    return cell.style if isinstance(cell.style, Style) else _parse_style(cell.style)


class JobsTable(ScrollView, can_focus=True):
    """Rows of cells under a fixed header, with a row cursor."""

    BINDINGS = [
        # the ids (and j/k, g/G) of every ftui table: ftui.widgets.table.TABLE_KEYS
        Binding("up,k", "cursor(-1)", "Up", id="table.up", show=False),
        Binding("down,j", "cursor(1)", "Down", id="table.down", show=False),
        Binding("pageup", "page(-1)", "Page up", id="table.page_up", show=False),
        Binding("pagedown", "page(1)", "Page down", id="table.page_down", show=False),
        Binding("home,g", "first", "First", id="table.first", show=False),
        Binding("end,G", "last", "Last", id="table.last", show=False),
        Binding("enter", "select", "Open", id="table.select", show=False),
    ]

    COMPONENT_CLASSES = {"jobs-table--header", "jobs-table--cursor"}

    DEFAULT_CSS = """
    JobsTable { height: 1fr; }
    JobsTable > .jobs-table--header { text-style: bold; color: $text-muted; }
    JobsTable > .jobs-table--cursor { background: $primary 30%; }
    JobsTable:focus > .jobs-table--cursor { background: $primary; color: $text; }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class RowHighlighted(Message):
        def __init__(self, table: JobsTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

    class RowSelected(Message):
        def __init__(self, table: JobsTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = list(columns)
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._make: Callable[[str], tuple[Cell, ...]] = lambda key: ()
        self._index: dict[str, int] = {}
        self._widths = [len(label) for _key, label in self.columns]
        self._widen_pending = False

    # -- data ------------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self.cursor_row] if self._keys else None

    def set_rows(self, keys: Sequence[str], cells: Callable[[str], tuple[Cell, ...]]) -> None:
        """Show rows ``keys``; ``cells(key)`` gives a row's cells when it is first drawn.

        The cursor stays on its key when that is still there.
        """
        keep = self.cursor_key
        self._keys = list(keys)
        self._make = cells
        self._cells = {}
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._widths = [len(label) for _key, label in self.columns]
        for key in self._keys[:SIZE_FROM]:
            self._widen(self._row(key))
        self._resize()
        row = self._index.get(keep, 0) if keep is not None else 0
        self.cursor_row = min(row, max(0, len(self._keys) - 1))
        self.refresh()

    def update_row(self, key: str) -> None:
        """Draw one row again from fresh cells (columns widen if a cell needs it)."""
        i = self._index.get(key)
        if i is None:
            return
        self._cells.pop(key, None)
        if self._widen(self._row(key)):
            self._resize()
            self.refresh()
        else:
            self.refresh_line(i + 1 - int(self.scroll_offset.y))

    def get_row(self, key: str) -> tuple[Cell, ...] | None:
        return self._row(key) if key in self._index else None

    def _row(self, key: str) -> tuple[Cell, ...]:
        cells = self._cells.get(key)
        if cells is None:
            cells = self._cells[key] = self._make(key)
        return cells

    def _widen(self, cells: tuple[Cell, ...]) -> bool:
        grew = False
        for c, cell in enumerate(cells):
            n = min(len(_plain(cell)), MAX_COLUMN_WIDTH)
            if c < len(self._widths) and n > self._widths[c]:
                self._widths[c] = n
                grew = True
        return grew

    def _widen_later(self) -> None:
        self._widen_pending = False
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        width = sum(self._widths) + GAP * len(self._widths) + 1
        self.virtual_size = Size(width, len(self._keys) + 1)

    # -- cursor ----------------------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        self.cursor_row = max(0, min(row, len(self._keys) - 1)) if self._keys else 0

    def watch_cursor_row(self, row: int) -> None:
        self._ensure_visible()
        self.call_after_refresh(self._ensure_visible)  # again once scrollbars are laid out
        self.refresh()
        self.post_message(self.RowHighlighted(self, self.cursor_key))

    def _ensure_visible(self) -> None:
        row = self.cursor_row
        body = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_offset.y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + body:
            self.scroll_to(y=row - body + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, delta: int) -> None:
        body = max(1, self.scrollable_content_region.height - 1)
        self.move_cursor(self.cursor_row + delta * body)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._keys) - 1)

    def action_select(self) -> None:
        if self._keys:
            self.post_message(self.RowSelected(self, self._keys[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1 and self._keys:
            row = int(self.scroll_offset.y) + event.y - 1
            if 0 <= row < len(self._keys):
                if row == self.cursor_row and event.chain > 1:
                    self.action_select()
                self.move_cursor(row)

    # -- drawing ---------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = int(self.scroll_offset.x)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("jobs-table--header")
            cells: tuple[Cell, ...] = tuple(label for _key, label in self.columns)
            return self._line(cells, style, scroll_x, width, header=True)
        row = int(self.scroll_offset.y) + y - 1
        if row >= len(self._keys):
            return Strip.blank(width, base)
        style = base
        if row == self.cursor_row:
            style = base + self.get_component_rich_style("jobs-table--cursor")
        cells = self._row(self._keys[row])
        if self._widen(cells) and not self._widen_pending:  # a wider row came into view
            self._widen_pending = True
            self.call_later(self._widen_later)
        return self._line(cells, style, scroll_x, width)

    def _line(
        self, cells: tuple[Cell, ...], style: Style, scroll_x: int, width: int, header=False
    ) -> Strip:
        segments = [Segment(" ", style)]
        for cell, w in zip(cells, self._widths, strict=False):
            text = _plain(cell)
            if len(text) > w:
                text = text[: w - 1] + "…"
            padded = text.ljust(w + GAP)
            if isinstance(cell, Text) and cell.style and not header:
                cell_style = style + _cell_style(cell)
                segments.append(Segment(padded[: len(text)], cell_style))
                segments.append(Segment(padded[len(text) :], style))
            else:
                segments.append(Segment(padded, style))
        strip = Strip(segments)
        total = strip.cell_length
        if total < scroll_x + width:
            strip = strip.extend_cell_length(scroll_x + width, style)
        return strip.crop(scroll_x, scroll_x + width)
