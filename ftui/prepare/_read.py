"""Readers: CSV, TSV, XLSX, JSON, JSONL, TXT and DataFrames, into one column-wise ``Table``.

The format comes from the extension, checked against the content (a ZIP signature, a leading
``{``/``[``, the delimiter of a header naming ``prompt``/``completion``), so a file whose extension
lies is still read. Every record keeps its location in the input (file line, sheet row, record
number) so findings can name it. Malformed input raises ``PrepareError`` listing every bad line
found (capped), with the column where one is known.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import operator
import os
import warnings
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import itemgetter
from typing import Any

from ._model import INFO, NECESSARY, WARNING, Finding, PrepareError, Problem

READ_BYTES = 1 << 24
CSV_CHUNK_ROWS = 50_000
KEEP = ("prompt", "completion", "messages")  # columns whose values are kept (case-insensitive)

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".txt": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
NAMES = {
    "csv": "CSV",
    "tsv": "TSV",
    "xlsx": "Excel (XLSX)",
    "txt": "text",
    "jsonl": "JSON Lines",
    "json": "JSON",
    "dataframe": "DataFrame",
}
SUPPORTED = ".csv, .tsv, .xlsx, .txt, .json or .jsonl"


@dataclass
class Table:
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


def _kept(name: str) -> bool:
    return name.lower() in KEEP


# ------------------------------------------------------------------ entry point


def read(source: Any) -> Table:
    if hasattr(source, "columns") and hasattr(source, "to_dict"):
        return _read_dataframe(source)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise PrepareError("file does not exist", path=path)
    if os.path.isdir(path):
        raise PrepareError("is a directory, not a file", path=path)
    ext = os.path.splitext(path)[1].lower()
    ext_fmt = EXTENSIONS.get(ext)
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise PrepareError(f"cannot be read: {exc.strerror or exc}", path=path) from None
    fmt, delim = _sniff(head, ext_fmt)
    if fmt is None:
        if ext_fmt is None:
            what = f"ends with `{ext}`" if ext else "has no extension"
            raise PrepareError(
                f"unsupported file type: the name {what} and the content is not recognisable as"
                f" CSV, TSV, XLSX, JSON or JSONL. Use one of {SUPPORTED}.",
                path=path,
            )
        fmt = ext_fmt
        delim = "\t" if fmt == "tsv" else ","
    if fmt == "xlsx":
        table = _read_xlsx(path)
    elif fmt in ("csv", "tsv"):
        table = _read_delimited(path, fmt, delim or ",", head)
    elif fmt == "txt":
        table = _read_txt(path, head)
    else:  # json / jsonl: the content decides between one document and one object per line
        table = _read_json_any(path, head, fmt)
    table.notes[:0] = _format_notes(table, ext, ext_fmt, delim)
    return table


def _format_notes(table: Table, ext: str, ext_fmt: str | None, delim: str | None) -> list[Finding]:
    fmt = table.format
    notes = []
    if ext_fmt != fmt and not (ext_fmt == "json" and fmt == "jsonl"):
        said = f"says {NAMES[ext_fmt]}" if ext_fmt else f"(`{ext or 'none'}`) says nothing"
        notes.append(
            Finding(
                "format_sniffed",
                INFO,
                f"The file's extension {said}, but its content is {NAMES[fmt]}:"
                f" read as {NAMES[fmt]}",
                details={"extension": ext, "format": fmt},
            )
        )
    if fmt == "jsonl" and ext_fmt == "json":
        message = "Your .json file holds JSON Lines (one object per line)"
        action = "Write it as a JSONL file"
    elif fmt == "jsonl" and ext_fmt == "jsonl":
        return notes
    elif fmt == "jsonl":
        message = "Your file holds JSON Lines under another extension"
        action = "Write it as a JSONL file"
    elif fmt == "json":
        message = "Your file is one JSON document, not one JSON object per line"
        action = "Convert JSON to JSONL"
    else:
        extra = ""
        if fmt == "csv" and delim == ";":
            extra = " (semicolon-separated)"
        message = f"Your file is {NAMES[fmt]}{extra}"
        action = f"Convert {NAMES[fmt]} to JSONL"
    notes.append(Finding("format", NECESSARY, message, action, details={"format": fmt}))
    return notes


# ------------------------------------------------------------------ sniffing


def _decode_head(head: bytes) -> tuple[str, str]:
    """(text, encoding) of the first bytes of a file."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", "replace"), "utf-16"
    return head.decode("utf-8", "replace").removeprefix("\ufeff"), "utf-8"


def _first_lines(text: str, k: int) -> list[str]:
    lines = [ln for ln in text.split("\n")[: k + 20] if ln.strip()]
    return lines[:k]


def _header_delimiter(line: str, want_both: bool) -> str | None:
    for delim in (",", "\t", ";"):
        try:
            names = next(csv.reader([line], delimiter=delim))
        except (csv.Error, StopIteration):
            continue
        lowered = {n.strip().lower() for n in names}
        hits = lowered & {"prompt", "completion"}
        if (len(hits) == 2) if want_both else (hits or "messages" in lowered):
            return delim
    return None


def _json_object_line(line: str) -> dict | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _sniff(head: bytes, ext_fmt: str | None) -> tuple[str | None, str | None]:
    """The format the content shows (and the delimiter for CSV/TSV), or (None, None)."""
    if head.startswith(b"PK\x03\x04"):
        return "xlsx", None
    text, _ = _decode_head(head)
    stripped = text.lstrip(" \t\r\n")
    lines = _first_lines(text, 2)
    if stripped.startswith("[") and ext_fmt != "txt":
        return "json", None
    if stripped.startswith("{"):
        first = _json_object_line(lines[0]) if lines else None
        if first is not None:
            if ext_fmt == "txt" and not ({k.lower() for k in first} & set(KEEP)):
                return "txt", None
            return "jsonl", None
        if ext_fmt == "jsonl" or (len(lines) > 1 and _json_object_line(lines[1]) is not None):
            return "jsonl", None  # JSON Lines, maybe with a bad first line
        if ext_fmt in ("json", None):
            return "json", None
    if not lines:
        return None, None
    if ext_fmt in ("csv", "tsv"):
        own = "\t" if ext_fmt == "tsv" else ","
        if _header_delimiter(lines[0], want_both=False) in (None, own):
            return ext_fmt, own
    delim = _header_delimiter(lines[0], want_both=ext_fmt == "txt")
    if delim is not None:
        return ("tsv" if delim == "\t" else "csv"), delim
    if ext_fmt in ("csv", "tsv", "txt"):
        return ext_fmt, ("\t" if ext_fmt == "tsv" else ",")
    return None, None


# ------------------------------------------------------------------ helpers


def _char_column(raw: bytes, byte_offset: int) -> int:
    return len(raw[:byte_offset].decode("utf-8", "replace")) + 1


def _utf8_problems(path: str) -> tuple[list[Problem], int]:
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
                            _char_column(raw, exc.start) if number > 1 else exc.start + 1,
                        )
                    )
    return problems, total


def _raise_not_utf8(path: str) -> None:
    problems, total = _utf8_problems(path)
    if total:
        raise PrepareError(
            f"is not UTF-8 text ({total} line{'s' if total != 1 else ''} with invalid bytes)",
            path=path,
            problems=problems,
            total=total,
        )


def _encoding(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"


# ------------------------------------------------------------------ JSON Lines


class _Columns:
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
                        if _kept(key):
                            self.data[key] = [None] * self.n
        for key, values in self.data.items():
            try:
                values.extend(map(itemgetter(key), recs))
            except KeyError:  # some records lack the key: it is missing there
                del values[self.n :]
                values.extend([rec.get(key) for rec in recs])
        self.n += len(recs)


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _jsonl_slow(
    data: bytes, line0: int, cols: _Columns, locs: array, problems: list[Problem]
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
                    _char_column(raw, exc.start),
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
            report(Problem(f"expected a JSON object, found {_type_name(obj)}", number, 1))
            continue
        recs.append(obj)
        locs.append(number)
    if recs:
        cols.add(recs)
    return bad


def _read_jsonl(path: str, f: Any) -> Table:
    cols = _Columns()
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
                bad += _jsonl_slow(body, line0, cols, locs, problems)
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


# ------------------------------------------------------------------ JSON document


def _read_json_any(path: str, head: bytes, fmt: str) -> Table:
    _, enc = _decode_head(head)
    if fmt == "json":
        return _read_json_document(path, enc)
    if enc != "utf-8":
        try:
            with open(path, encoding=enc) as f:
                stream: io.RawIOBase | io.BufferedIOBase = io.BytesIO(f.read().encode("utf-8"))
        except UnicodeError:
            raise PrepareError(f"is not valid {enc.upper()} text", path=path) from None
        return _read_jsonl(path, stream)
    try:
        with open(path, "rb") as f:
            table = _read_jsonl(path, f)
        if (
            len(table) == 1
            and table.data
            and all(isinstance(v[0], dict) for v in table.data.values())
        ):
            return _read_json_document(path, enc)  # one line in pandas' "columns" layout
        return table
    except PrepareError as jsonl_error:
        if enc == "utf-8" and _decode_head(head)[0].lstrip(" \t\r\n").startswith(("{", "[")):
            try:  # one pretty-printed document after all?
                return _read_json_document(path, enc)
            except PrepareError:
                pass
        raise jsonl_error from None


def _read_json_document(path: str, enc: str) -> Table:
    try:
        with open(path, encoding="utf-8-sig" if enc == "utf-8" else enc) as f:
            text = f.read()
    except UnicodeDecodeError:
        _raise_not_utf8(path)
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
            f"is JSON but holds {_type_name(doc)}; expected an array of objects (records)",
            path=path,
        )
    problems = [
        Problem(f"record {i} is {_type_name(r)}, not an object")
        for i, r in enumerate(records, start=1)
        if not isinstance(r, dict)
    ]
    if problems:
        raise PrepareError(
            "is a JSON array with elements that are not objects", path=path, problems=problems
        )
    cols = _Columns()
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


# ------------------------------------------------------------------ CSV / TSV


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


def _read_delimited(path: str, fmt: str, delim: str, head: bytes) -> Table:
    enc = _encoding(head)
    header = _raw_header(path, enc, delim)
    table = None
    if header:
        table = _read_delimited_fast(path, fmt, delim, enc, header)
    if table is None:
        table = _read_delimited_exact(path, fmt, delim, enc)
    table.notes.extend(_header_notes(header or table.columns))
    return table


def _raw_header(path: str, enc: str, delim: str) -> list[str] | None:
    try:
        with open(path, encoding=enc, newline="") as f:
            return next(csv.reader(f, delimiter=delim), None)
    except (UnicodeDecodeError, csv.Error):
        return None


def _header_notes(header: list[str]) -> list[Finding]:
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


def _dedupe_names(names: list[str]) -> list[str]:
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


def _read_delimited_fast(
    path: str, fmt: str, delim: str, enc: str, header: list[str]
) -> Table | None:
    """pandas' C parser, when every record's first line can be derived exactly; else None."""
    import pandas as pd

    names = _dedupe_names(header)
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
    data = {name: col for name, col in zip(names, columns, strict=True) if _kept(name)}
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


def _read_delimited_exact(path: str, fmt: str, delim: str, enc: str) -> Table:
    """Python's csv module, line by line: exact record lines and every malformed record."""
    if enc != "utf-16":
        _raise_not_utf8(path)
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
        names = _dedupe_names(header)
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
        if _kept(name):
            data[name] = [row[j] if j < len(row) else None for row in rows]
    return Table(path, fmt, "line", names, data, locs, blank_is_missing=True)


# ------------------------------------------------------------------ TXT


def _read_txt(path: str, head: bytes) -> Table:
    enc = "utf-16" if _encoding(head) == "utf-16" else "utf-8-sig"
    try:
        with open(path, encoding=enc) as f:  # universal newlines
            text = f.read()
    except UnicodeDecodeError:
        _raise_not_utf8(path)
        raise
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    n = len(lines)
    return Table(
        path,
        "txt",
        "line",
        ["prompt", "completion"],
        {"prompt": [""] * n, "completion": lines},
        range(1, n + 1),
    )


# ------------------------------------------------------------------ XLSX


def _read_xlsx(path: str) -> Table:
    with open(path, "rb") as handle:  # a file object: openpyxl judges names by their extension
        return _read_workbook(path, handle)


def _read_workbook(path: str, handle: Any) -> Table:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, InvalidFileException) as exc:
        raise PrepareError(f"is not a valid Excel (XLSX) file: {exc}", path=path) from None
    try:
        sheets = wb.sheetnames
        if not sheets:
            raise PrepareError("is an Excel file without sheets", path=path)
        ws = wb[sheets[0]]
        rows = ws.iter_rows(values_only=True)
        header = None
        header_row = 0
        for number, row in enumerate(rows, start=1):
            if any(v is not None and str(v).strip() for v in row):
                header, header_row = list(row), number
                break
        notes = []
        if len(sheets) > 1:
            notes.append(
                Finding(
                    "sheets",
                    WARNING,
                    f"Your Excel file has {len(sheets)} sheets ({', '.join(sheets)}); only the"
                    f" first, `{sheets[0]}`, is read. Move all data to the first sheet or save it"
                    " as CSV",
                    details={"sheets": sheets},
                )
            )
        if header is None:
            return Table(path, "xlsx", "row", [], {}, range(0), notes, typed=True)
        while header and (header[-1] is None or not str(header[-1]).strip()):
            header.pop()
        names = _dedupe_names([str(h).strip() if h is not None else "" for h in header])
        kept = [(j, name) for j, name in enumerate(names) if _kept(name)]
        data: dict[str, list[Any]] = {name: [] for _, name in kept}
        locs = array("q")
        for number, row in enumerate(rows, start=header_row + 1):
            if all(v is None or (isinstance(v, str) and not v) for v in row):
                continue
            locs.append(number)
            for j, name in kept:
                data[name].append(row[j] if j < len(row) else None)
        notes += _header_notes([str(h) if h is not None else "" for h in header])
        return Table(
            path, "xlsx", "row", names, data, locs, notes, typed=True, blank_is_missing=True
        )
    finally:
        wb.close()


# ------------------------------------------------------------------ DataFrame


def _read_dataframe(df: Any) -> Table:
    names = _dedupe_names([str(c) for c in df.columns])
    data: dict[str, list[Any]] = {}
    for j, name in enumerate(names):
        if _kept(name):
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
    notes = _header_notes([str(c) for c in df.columns])
    return Table(None, "dataframe", "index", names, data, locs, notes, typed=True)
