"""How ftui writes times and sizes: one format for every screen, widget and command.

Standard library only, so the scripting commands use it without the TUI.
"""

from __future__ import annotations

from datetime import datetime


def fmt_time(ts: float | None, *, seconds: bool = False, missing: str = "") -> str:
    """Unix seconds as local ``YYYY-MM-DD HH:MM`` (``:SS`` with ``seconds``).

    ``missing`` stands in for a time the server did not send (None or 0).
    """
    if not ts:
        return missing
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def fmt_clock(ts: float | None) -> str | None:
    """Unix seconds as the local ``HH:MM`` of today's clock (None when there is no time)."""
    return datetime.fromtimestamp(ts).strftime("%H:%M") if ts else None


def fmt_bytes(n: int | None) -> str:
    """``512 B``, ``1.5 KB``, ``3.2 MB``, ``1.1 GB`` (binary units; GB is the largest)."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
