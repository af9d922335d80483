"""CSV and TSV: pandas' C parser when every record's line can be derived exactly, else Python's
csv module line by line, which also names every malformed record."""

from __future__ import annotations

import csv
import io
import operator
import warnings
from array import array
from itertools import compress, repeat
from typing import Any

from .._model import PrepareError, Problem
from ._common import (
    NAMES,
    READ_BYTES,
    Table,
    dedupe_names,
    header_notes,
    is_kept,
    raise_not_utf8,
    text_encoding,
)

CSV_CHUNK_ROWS = 50_000  # rows per pandas chunk: bounds the parser's working memory


def _count_lines(path: str) -> int:
    """Lines in the file, ignoring trailing blank lines."""
    newlines = 0
    last = b""
    with open(path, "rb") as f:
        while chunk := f.read(READ_BYTES):
            newlines += chunk.count(b"\n")
            last = (last + chunk)[-4096:]
    tail = last.rstrip(b"\r\n")
    trailing = last[len(tail) :].count(b"\n")
    if not tail:
        return 0
    return newlines - trailing + 1


def read(path: str, fmt: str, delim: str, head: bytes) -> Table:
    enc = text_encoding(head)
    header = _raw_header(path, enc, delim)
    table = None
    if header:
        table = _read_fast(path, fmt, delim, enc, header)
    if table is None:
        table = _read_exact(path, fmt, delim, enc)
    table.notes.extend(header_notes(header or table.columns))
    return table


def _raw_header(path: str, enc: str, delim: str) -> list[str] | None:
    try:
        with open(path, encoding=enc, newline="") as f:
            return next(csv.reader(f, delimiter=delim), None)
    except (UnicodeDecodeError, csv.Error):
        return None


def _read_fast(path: str, fmt: str, delim: str, enc: str, header: list[str]) -> Table | None:
    """pandas' C parser, when every record's first line can be derived exactly; else None."""
    import pandas as pd

    names = dedupe_names(header)
    columns: list[list[Any]] = [[] for _ in names]
    try:
        reader = pd.read_csv(
            path,
            sep=delim,
            dtype=object,
            na_filter=False,
            keep_default_na=False,
            index_col=False,
            encoding=enc,
            header=0,
            names=names,
            skip_blank_lines=True,
            chunksize=CSV_CHUNK_ROWS,
        )
        with reader, warnings.catch_warnings():
            # a ragged first record only warns ("loss of data"): treat it as malformed
            warnings.simplefilter("error", pd.errors.ParserWarning)
            for df in reader:
                if len(df.columns) != len(names):
                    return None
                for col, name in zip(columns, names, strict=True):
                    col.extend(df[name].tolist())
    except (
        ValueError,
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        pd.errors.ParserWarning,
    ):
        return None
    n = len(columns[0]) if columns else 0
    # Lines: 1 for the header, then one per record plus the newlines inside its fields.
    import numpy as np

    extra = np.zeros(n, dtype=np.int64)
    for col in columns:
        if set(map(type, col)) - {str}:  # short rows: pandas fills them with NaN
            for i, value in enumerate(col):
                if type(value) is not str:  # noqa: E721
                    col[i] = None
        text = [v if v is not None else "" for v in col] if None in col else col
        with_newlines = list(compress(range(n), map(operator.contains, text, repeat("\n"))))
        for i in with_newlines:
            extra[i] += text[i].count("\n")
    inner = int(extra.sum())
    if _count_lines(path) != 1 + n + inner:
        return None  # blank lines, CR line ends, a multi-line header: count them the slow way
    if inner:
        starts = np.arange(2, n + 2, dtype=np.int64)
        starts[1:] += np.cumsum(extra[:-1])
        locs = array("q", starts.tobytes())
    else:
        locs = range(2, n + 2)
    data = {name: col for name, col in zip(names, columns, strict=True) if is_kept(name)}
    return Table(path, fmt, "line", names, data, locs, blank_is_missing=True)


class _LineTap:
    """Iterates a text file's lines for csv.reader, remembering those of the current record."""

    def __init__(self, f: io.TextIOBase) -> None:
        self.f = f
        self.buf: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self.f)
        self.buf.append(line)
        return line

    def take(self) -> str:
        raw = "".join(self.buf)
        self.buf.clear()
        return raw


def _field_starts(raw: str, delim: str) -> tuple[list[int], int | None]:
    """Offsets where each field of one raw record starts, and the offset of an unclosed quote."""
    starts = [0]
    quoted_at = None
    i = 0
    at_start = True
    in_quotes = False
    while i < len(raw):
        ch = raw[i]
        if in_quotes:
            if ch == '"':
                if i + 1 < len(raw) and raw[i + 1] == '"':
                    i += 1
                else:
                    in_quotes = False
                    quoted_at = None
        elif ch == '"' and at_start:
            in_quotes = True
            quoted_at = i
        elif ch == delim:
            starts.append(i + 1)
            at_start = True
            i += 1
            continue
        elif ch in "\r\n":
            break
        at_start = False
        i += 1
    return starts, quoted_at if in_quotes else None


def _line_col(raw: str, offset: int, line0: int) -> tuple[int, int]:
    before = raw[:offset]
    line = line0 + before.count("\n")
    col = offset - (before.rfind("\n") + 1) + 1
    return line, col


def _read_exact(path: str, fmt: str, delim: str, enc: str) -> Table:
    """Python's csv module, line by line: exact record lines and every malformed record."""
    if enc != "utf-16":
        raise_not_utf8(path)
    problems: list[Problem] = []
    bad = 0
    rows: list[list[str]] = []
    locs = array("q")
    with open(path, encoding=enc, newline="") as f:
        tap = _LineTap(f)
        reader = csv.reader(tap, delimiter=delim, strict=False)
        header = next(reader, None)
        raw = tap.take()
        if header is None:
            raise PrepareError(
                "is empty: expected a header line naming the columns `prompt` and `completion`",
                path=path,
                problems=[Problem("no header", 1, 1)],
            )
        names = dedupe_names(header)
        width = len(names)
        start = reader.line_num + 1
        last_raw, last_start = raw, 1
        for row in reader:
            raw = tap.take()
            last_raw, last_start = raw, start
            if not row:
                start = reader.line_num + 1
                continue
            if len(row) > width:
                bad += 1
                offsets, _ = _field_starts(raw, delim)
                line, col = _line_col(raw, offsets[min(width, len(offsets) - 1)], start)
                problems.append(
                    Problem(
                        f"expected {width} fields (as in the header), found {len(row)}", line, col
                    )
                )
            else:
                rows.append(row)
                locs.append(start)
            start = reader.line_num + 1
        _, unclosed = _field_starts(last_raw, delim)
        if unclosed is not None:
            bad += 1
            line, col = _line_col(last_raw, unclosed, last_start)
            problems.append(Problem("quoted field is never closed", line, col))
    if bad:
        raise PrepareError(
            f"is not valid {NAMES[fmt]} ({bad} bad record{'s' if bad != 1 else ''})",
            path=path,
            problems=problems,
            total=bad,
        )
    data = {}
    for j, name in enumerate(names):
        if is_kept(name):
            data[name] = [row[j] if j < len(row) else None for row in rows]
    return Table(path, fmt, "line", names, data, locs, blank_is_missing=True)
