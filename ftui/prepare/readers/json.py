"""One JSON document: an array of records, one record, or pandas' "columns" layout."""

from __future__ import annotations

import json

from .._model import PrepareError, Problem
from ._common import KEEP, Columns, Table, raise_not_utf8, type_name


def read(path: str, enc: str) -> Table:
    try:
        with open(path, encoding="utf-8-sig" if enc == "utf-8" else enc) as f:
            text = f.read()
    except UnicodeDecodeError:
        raise_not_utf8(path)
        raise
    if not text.strip():
        raise PrepareError("is empty", path=path, problems=[Problem("no data", 1, 1)])
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = exc.msg[0].lower() + exc.msg[1:]
        raise PrepareError(
            "is not valid JSON", path=path, problems=[Problem(msg, exc.lineno, exc.colno)]
        ) from None
    del text
    if isinstance(doc, dict):
        records = _records_from_object(doc)
        if records is None:
            raise PrepareError(
                "is a JSON object that is neither one example nor columns of examples",
                path=path,
            )
    elif isinstance(doc, list):
        records = doc
    else:
        raise PrepareError(
            f"is JSON but holds {type_name(doc)}; expected an array of objects (records)",
            path=path,
        )
    problems = [
        Problem(f"record {i} is {type_name(r)}, not an object")
        for i, r in enumerate(records, start=1)
        if not isinstance(r, dict)
    ]
    if problems:
        raise PrepareError(
            "is a JSON array with elements that are not objects", path=path, problems=problems
        )
    cols = Columns()
    if records:
        cols.add(records)
    return Table(
        path, "json", "record", list(cols.order), cols.data, range(1, len(records) + 1), typed=True
    )


def _records_from_object(doc: dict) -> list[dict] | None:
    """One JSON object: a single example, or pandas' "columns" layout ({col: {row: value}})."""
    if not doc:
        return []
    values = list(doc.values())
    if all(isinstance(v, dict) for v in values) and not ({k.lower() for k in doc} & {"messages"}):
        index: dict[str, None] = {}
        for v in values:
            index.update(dict.fromkeys(v))
        keys = list(index)
        if all(k.isdigit() for k in keys):
            keys.sort(key=int)
        return [{col: doc[col].get(k) for col in doc} for k in keys]
    if {k.lower() for k in doc} & set(KEEP):
        return [doc]
    return None
