"""JSON Lines: whole chunks parsed at once as one JSON array; a chunk with a bad line is read
again line by line so that every bad line is reported."""

from __future__ import annotations

import codecs
import contextlib
import json
from array import array
from typing import Any

from .._model import PrepareError, Problem
from ._common import READ_BYTES, Columns, Table, char_column, type_name


def _read_lines(
    data: bytes, line0: int, cols: Columns, locs: array, problems: list[Problem]
) -> int:
    """Line by line: collect the good records, report the bad lines. Returns the bad count."""
    bad = 0
    recs = []

    def report(problem: Problem) -> None:
        if len(problems) < PrepareError.MAX_PROBLEMS:
            problems.append(problem)

    for offset, raw in enumerate(data.split(b"\n")):
        number = line0 + offset
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad += 1
            report(
                Problem(
                    f"invalid UTF-8 byte 0x{raw[exc.start]:02x}; save the file as UTF-8",
                    number,
                    char_column(raw, exc.start),
                )
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            bad += 1
            msg = exc.msg[0].lower() + exc.msg[1:]
            report(Problem(f"not valid JSON: {msg}", number, exc.colno))
            continue
        if not isinstance(obj, dict):
            bad += 1
            report(Problem(f"expected a JSON object, found {type_name(obj)}", number, 1))
            continue
        recs.append(obj)
        locs.append(number)
    if recs:
        cols.add(recs)
    return bad


def read(path: str, f: Any) -> Table:
    cols = Columns()
    locs = array("q")
    problems: list[Problem] = []
    bad = 0
    line0 = 1
    rest = b""
    first = True
    while True:
        chunk = f.read(READ_BYTES)
        if first:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
            first = False
        data = rest + chunk
        if chunk:
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest, data = data[cut + 1 :], data[: cut + 1]
        else:
            rest = b""
        if data:
            newlines = data.count(b"\n")
            ends = data.endswith(b"\n")
            body = data[:-1] if ends else data
            nlines = newlines if ends else newlines + 1
            recs = None
            commas = memoryview(data.replace(b"\n", b","))
            with contextlib.suppress(ValueError):
                recs = json.loads(b"".join((b"[", commas[:-1] if ends else commas, b"]")))
            del commas
            if recs is not None and len(recs) == nlines and set(map(type, recs)) == {dict}:
                cols.add(recs)
                locs.extend(range(line0, line0 + nlines))
            else:
                recs = None
                bad += _read_lines(body, line0, cols, locs, problems)
            line0 += newlines
        if not chunk:
            break
    if bad:
        raise PrepareError(
            f"is not valid JSON Lines ({bad} bad line{'s' if bad != 1 else ''})",
            path=path,
            problems=problems,
            total=bad,
        )
    return Table(path, "jsonl", "line", list(cols.order), cols.data, locs, typed=True)
