"""A pandas DataFrame given to ``analyze``: its index names the rows."""

from __future__ import annotations

from typing import Any

from ._common import Table, dedupe_names, header_notes, is_kept


def read(df: Any) -> Table:
    names = dedupe_names([str(c) for c in df.columns])
    data: dict[str, list[Any]] = {}
    for j, name in enumerate(names):
        if is_kept(name):
            values = df.iloc[:, j].tolist()
            for i, v in enumerate(values):
                if v is not None and not isinstance(v, str | list | dict):
                    try:
                        missing = bool(v != v) or type(v).__name__ in ("NAType", "NaTType")
                    except (TypeError, ValueError):
                        missing = False
                    if missing:
                        values[i] = None
            data[name] = values
    index = df.index
    try:
        locs = [int(x) for x in index] if str(index.dtype).startswith(("int", "uint")) else None
    except (TypeError, ValueError):
        locs = None
    if locs is None:
        locs = range(len(df))
    notes = header_notes([str(c) for c in df.columns])
    return Table(None, "dataframe", "index", names, data, locs, notes, typed=True)
