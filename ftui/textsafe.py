"""Text from a server or a file, made safe to show: no terminal escapes, no invalid Unicode.

A file name, model id, job message or model output may hold control characters. Written raw to
a terminal, ESC and C1 sequences set the window title, clear the screen or rewrite earlier lines;
a lone surrogate cannot even be encoded for output. Everything ftui shows (the TUI and every
command) goes through this module. Standard library only: the commands and the record checks
import it without the TUI or the server.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Bidirectional overrides and isolates can reorder what follows them on the line.
_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))

#: One character for one character (offsets into the text still hold): C0 controls as the
#: Unicode control pictures (ESC → ␛), DEL as ␡, C1 controls, bidi controls and lone surrogates
#: as the replacement character.
_VISIBLE = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}
_VISIBLE[0x7F] = 0x2421
_VISIBLE.update({c: 0xFFFD for c in (*range(0x80, 0xA0), *_BIDI, *range(0xD800, 0xE000))})
_ONE_LINE = {**_VISIBLE, 0x09: 0x2409, 0x0A: 0x2424}
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# What json.dumps(ensure_ascii=False) leaves raw but a terminal or an encoder would trip on.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def visible(text: str) -> str:
    """``text`` with control characters (but tab and newline) replaced by visible symbols."""
    return text.translate(_VISIBLE) if _UNSAFE.search(text) else text


def one_line(text: str) -> str:
    """``text`` for a table cell or a one-line field: tab and newline made visible too."""
    return text.translate(_ONE_LINE) if _UNSAFE_LINE.search(text) else text


def safe_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that keeps non-ASCII text readable but writes DEL, C1 controls, bidi
    controls, line separators and lone surrogates as ``\\uXXXX`` escapes (json.dumps escapes
    only C0 controls when ``ensure_ascii`` is off). Those characters occur only inside JSON
    strings, so the result is the same JSON value."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encodable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so that it can be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def first_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (JSON's ``"\\ud800"`` decodes to one), or
    None. Such text cannot be written as UTF-8, nor tokenized."""
    match = _SURROGATE.search(text)
    return match.start() if match else None
