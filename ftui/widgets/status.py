"""Job status as a word, a glyph and a colour: never colour alone (16 colours, NO_COLOR, SSH)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ftui.textsafe import one_line

#: state → (glyph, style). Styles use the 16 ANSI colours so they survive any terminal.
STATE_STYLE = {
    "pending": ("…", "yellow"),
    "running": ("●", "bold cyan"),
    "paused": ("‖", "magenta"),
    "succeeded": ("✔", "green"),
    "failed": ("✖", "bold red"),
    "cancelled": ("⊘", "bright_black"),
}


def status_text(status: str, state: str | None = None) -> Text:
    """``● running``: the server's status word with the glyph and colour of its state."""
    glyph, style = STATE_STYLE.get(state or status, ("?", ""))
    return Text(f"{glyph} {one_line(status)}", style=style)


class StatusBadge(Static):
    """A one-line status badge (``✔ succeeded``)."""

    DEFAULT_CSS = """
    StatusBadge { width: auto; height: 1; }
    """

    def __init__(self, status: str = "", state: str | None = None, **kwargs) -> None:
        super().__init__(status_text(status, state) if status else "", **kwargs)

    def set_status(self, status: str, state: str | None = None) -> None:
        self.update(status_text(status, state))
