"""Plain text: one completion per line, empty prompts (open-ended generation)."""

from __future__ import annotations

from ._common import Table, raise_not_utf8, text_encoding


def read(path: str, head: bytes) -> Table:
    enc = "utf-16" if text_encoding(head) == "utf-16" else "utf-8-sig"
    try:
        with open(path, encoding=enc) as f:  # universal newlines
            text = f.read()
    except UnicodeDecodeError:
        raise_not_utf8(path)
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
