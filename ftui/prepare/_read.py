"""Which reader a file gets: its format from the extension, checked against the content.

The content decides (a ZIP signature, a leading ``{``/``[``, the delimiter of a header naming
``prompt``/``completion``), so a file whose extension lies is still read; a note says so. The
readers themselves, one per format, are in ``readers/``: each returns a column-wise ``Table`` in
which every record keeps its location in the input (file line, sheet row, record number) so
findings can name it. Malformed input raises ``PrepareError`` listing every bad line found
(capped), with the column where one is known.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from typing import Any

from ._model import INFO, NECESSARY, Finding, PrepareError
from .readers import csv as csv_reader
from .readers import dataframe, jsonl, txt, xlsx
from .readers import json as json_reader
from .readers._common import KEEP, NAMES, Table

__all__ = ["Table", "read"]

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
SUPPORTED = ".csv, .tsv, .xlsx, .txt, .json or .jsonl"


# ------------------------------------------------------------------ entry point


def read(source: Any) -> Table:
    if hasattr(source, "columns") and hasattr(source, "to_dict"):
        return dataframe.read(source)
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
        table = xlsx.read(path)
    elif fmt in ("csv", "tsv"):
        table = csv_reader.read(path, fmt, delim or ",", head)
    elif fmt == "txt":
        table = txt.read(path, head)
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


# ------------------------------------------------------------------ JSON or JSON Lines


def _read_json_any(path: str, head: bytes, fmt: str) -> Table:
    """One JSON document or one object per line: the content decides, not the extension."""
    _, enc = _decode_head(head)
    if fmt == "json":
        return json_reader.read(path, enc)
    if enc != "utf-8":
        try:
            with open(path, encoding=enc) as f:
                stream: io.RawIOBase | io.BufferedIOBase = io.BytesIO(f.read().encode("utf-8"))
        except UnicodeError:
            raise PrepareError(f"is not valid {enc.upper()} text", path=path) from None
        return jsonl.read(path, stream)
    try:
        with open(path, "rb") as f:
            table = jsonl.read(path, f)
        if (
            len(table) == 1
            and table.data
            and all(isinstance(v[0], dict) for v in table.data.values())
        ):
            return json_reader.read(path, enc)  # one line in pandas' "columns" layout
        return table
    except PrepareError as jsonl_error:
        if enc == "utf-8" and _decode_head(head)[0].lstrip(" \t\r\n").startswith(("{", "[")):
            try:  # one pretty-printed document after all?
                return json_reader.read(path, enc)
            except PrepareError:
                pass
        raise jsonl_error from None
