"""Numbers typed into form fields: one reading of the text, the reason in words when it is wrong.

Shared by the new-job form (limits from :mod:`ftui.dialects`) and the console's parameter panel.
An empty field is None (the server's default); NaN is never a number in range.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def read_number(text: str, *, integer: bool) -> int | float | None:
    """The number in ``text`` (None when empty); ValueError says what was expected."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text) if integer else float(text)
    except ValueError:
        raise ValueError("a whole number" if integer else "a number") from None


def whole(lo: int | None = None, hi: int | None = None) -> Callable[[str], int | None]:
    """A parser of whole numbers in ``lo``…``hi`` (either end open when None)."""

    def parse(text: str) -> int | None:
        value = read_number(text, integer=True)
        if value is None:
            return None
        if lo is not None and value < lo:
            raise ValueError(f"at least {lo}")
        if hi is not None and value > hi:
            raise ValueError(f"at most {hi}")
        return int(value)

    return parse


def real(lo: float, hi: float) -> Callable[[str], float | None]:
    """A parser of numbers in ``lo``…``hi`` (inclusive)."""

    def parse(text: str) -> float | None:
        value = read_number(text, integer=False)
        if value is None:
            return None
        if math.isnan(value) or not lo <= value <= hi:
            raise ValueError(f"between {lo:g} and {hi:g}")
        return float(value)

    return parse
