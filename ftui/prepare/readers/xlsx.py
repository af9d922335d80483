"""Excel workbooks (XLSX): the first sheet, from its first non-empty row as the header."""

from __future__ import annotations

from array import array
from typing import Any

from .._model import WARNING, Finding, PrepareError
from ._common import Table, dedupe_names, header_notes, is_kept


def read(path: str) -> Table:
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
        names = dedupe_names([str(h).strip() if h is not None else "" for h in header])
        kept = [(j, name) for j, name in enumerate(names) if is_kept(name)]
        data: dict[str, list[Any]] = {name: [] for _, name in kept}
        locs = array("q")
        for number, row in enumerate(rows, start=header_row + 1):
            if all(v is None or (isinstance(v, str) and not v) for v in row):
                continue
            locs.append(number)
            for j, name in kept:
                data[name].append(row[j] if j < len(row) else None)
        notes += header_notes([str(h) if h is not None else "" for h in header])
        return Table(
            path, "xlsx", "row", names, data, locs, notes, typed=True, blank_is_missing=True
        )
    finally:
        wb.close()
