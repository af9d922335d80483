"""What every reader shares: the ``Table`` they produce and the checks of names and bytes."""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from .._model import WARNING, Finding, PrepareError, Problem

READ_BYTES = 1 << 24  # bytes read at a time by the streaming readers
KEEP = ("prompt", "completion", "messages")  # the columns that name a schema (case-insensitive)
CHAT_KEYS = ("tools", "functions", "parallel_tool_calls")  # a chat line's keys beside messages

NAMES = {
    "csv": "CSV",
    "tsv": "TSV",
    "xlsx": "Excel (XLSX)",
    "txt": "text",
    "jsonl": "JSON Lines",
    "json": "JSON",
    "dataframe": "DataFrame",
}


@dataclass
class Table:
    """The records of one input, column by column; only the kept columns' values are held."""

    path: str | None
    format: str
    unit: str
    columns: list[str]
    data: dict[str, list[Any]]  # values of the kept columns; None means null or missing
    locs: Sequence[int]
    notes: list[Finding] = field(default_factory=list)
    typed: bool = False  # values may be non-strings (JSON, XLSX, DataFrame)
    blank_is_missing: bool = False  # CSV/TSV/XLSX: an empty cell is a missing value

    def __len__(self) -> int:
        return len(self.locs)


def is_kept(name: str) -> bool:
    """Whether a column's values are held (the schema's columns, and a chat line's others)."""
    return name.lower() in KEEP or name in CHAT_KEYS


def char_column(raw: bytes, byte_offset: int) -> int:
    return len(raw[:byte_offset].decode("utf-8", "replace")) + 1


def utf8_problems(path: str) -> tuple[list[Problem], int]:
    """Every line with bytes that are not UTF-8 (capped list, full count)."""
    problems: list[Problem] = []
    total = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                total += 1
                if len(problems) < PrepareError.MAX_PROBLEMS:
                    problems.append(
                        Problem(
                            f"invalid UTF-8 byte 0x{raw[exc.start]:02x}; save the file as UTF-8",
                            number,
                            char_column(raw, exc.start) if number > 1 else exc.start + 1,
                        )
                    )
    return problems, total


def raise_not_utf8(path: str) -> None:
    problems, total = utf8_problems(path)
    if total:
        raise PrepareError(
            f"is not UTF-8 text ({total} line{'s' if total != 1 else ''} with invalid bytes)",
            path=path,
            problems=problems,
            total=total,
        )


def text_encoding(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"


class Columns:
    """Column-wise accumulation of records: all key names in order, values of the kept ones."""

    def __init__(self) -> None:
        self.order: dict[str, None] = {}
        self.data: dict[str, list[Any]] = {}
        self.n = 0

    def add(self, recs: list[dict]) -> None:
        new = set().union(*recs).difference(self.order)
        if new:
            for rec in recs:
                for key in rec:
                    if key in new and key not in self.order:
                        self.order[key] = None
                        if is_kept(key):
                            self.data[key] = [None] * self.n
        for key, values in self.data.items():
            try:
                values.extend(map(itemgetter(key), recs))
            except KeyError:  # some records lack the key: it is missing there
                del values[self.n :]
                values.extend([rec.get(key) for rec in recs])
        self.n += len(recs)


def type_name(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def header_notes(header: list[str]) -> list[Finding]:
    """A warning for each column name the header repeats."""
    seen: dict[str, int] = {}
    notes = []
    for i, name in enumerate(header, start=1):
        if name in seen:
            notes.append(
                Finding(
                    "duplicate_column",
                    WARNING,
                    f"The header names `{name}` twice (columns {seen[name]} and {i}); the first"
                    " is used and the other is treated as an extra column",
                    details={"column": name, "positions": [seen[name], i]},
                )
            )
        else:
            seen[name] = i
    return notes


def dedupe_names(names: list[str]) -> list[str]:
    """Distinct column names: blank ones named by position, repeats suffixed with theirs."""
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names, start=1):
        name = str(name) if name is not None else ""
        if not name.strip():
            name = f"(column {i})"
        if name in seen:
            name = f"{name} (column {i})"
        seen.add(name)
        out.append(name)
    return out
