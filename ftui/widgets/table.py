"""The keys every ftui table shares: ``j``/``k`` beside the arrows, ``g``/``G`` for the ends.

:class:`VimDataTable` is a row-cursor DataTable with those keys (files, models, profiles); the
jobs list, a Line-API table, binds the same ids (:class:`ftui.widgets.jobs_table.JobsTable`).
Remapping ``table.down`` in the keymap moves both the arrow and ``j`` of every table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

#: (keys, action, description, id): the actions are DataTable's; JobsTable names its own alike.
TABLE_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("down,j", "cursor_down", "Down", "table.down"),
    ("up,k", "cursor_up", "Up", "table.up"),
    ("ctrl+home,g", "scroll_top", "First", "table.first"),
    ("ctrl+end,G", "scroll_bottom", "Last", "table.last"),
)


class VimDataTable(DataTable):
    """A DataTable of rows keyed by id, moved by arrows or ``j``/``k``, ``g``/``G``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(keys, action, description, id=binding_id, show=False)
        for keys, action, description, binding_id in TABLE_KEYS
    ]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)
