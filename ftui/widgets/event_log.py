"""A job's event log: plain-text ``Log`` lines, written in batches, never line by line.

Events are queued with :meth:`EventLog.add_events` and written together at most every
``FLUSH_EVERY`` seconds (one ``write_lines`` per batch is ~100x cheaper than a write per line).
The widget keeps the last ``MAX_LINES`` lines (the full history stays in the cache). When the
person has scrolled up, the log stays where it is and its subtitle counts the new events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.widgets import Log

from ftui.fmt import fmt_time
from ftui.textsafe import visible

MAX_LINES = 10_000
MAX_LINE_LENGTH = 1_000
FLUSH_EVERY = 0.1
LEVEL_PREFIX = {"warn": "! ", "warning": "! ", "error": "✖ "}


def format_event(event: Any) -> str:
    """``2024-05-01 12:00:00  message`` (``!`` before warnings, ``✖`` before errors)."""
    ts = getattr(event, "created_at", 0) or 0
    stamp = fmt_time(ts, seconds=True, missing=" " * 19)
    prefix = LEVEL_PREFIX.get(str(getattr(event, "level", "") or "").lower(), "")
    message = str(getattr(event, "message", "")).replace("\r", " ").replace("\n", " ⏎ ")
    message = visible(message)  # from the server: no escape sequences reach the terminal
    line = f"{stamp}  {prefix}{message}"
    return line if len(line) <= MAX_LINE_LENGTH else line[: MAX_LINE_LENGTH - 1] + "…"


class EventLog(Log):
    """A follow-the-tail log of job events, batched."""

    BINDINGS = [
        Binding("G,end", "tail", "Latest", id="events.tail", show=False),
        Binding("g,home", "top", "Oldest", id="events.top", show=False),
    ]

    DEFAULT_CSS = """
    EventLog { height: 1fr; border: round $primary 40%; }
    EventLog:focus { border: round $primary; }
    """

    def __init__(self, *, max_lines: int = MAX_LINES, **kwargs: Any) -> None:
        super().__init__(max_lines=max_lines, highlight=False, auto_scroll=True, **kwargs)
        self._pending: list[str] = []
        self.total = 0
        self.unseen = 0
        #: True while the view sticks to the newest line
        self.following = True
        self.border_title = "Events"

    def on_mount(self) -> None:
        self.set_interval(FLUSH_EVERY, self.flush)

    def add_events(self, events: Iterable[Any]) -> None:
        """Queue events to be written at the next flush."""
        self._pending.extend(format_event(e) for e in events)

    def add_lines(self, lines: Iterable[str]) -> None:
        self._pending.extend(lines)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Write what is queued in one batch."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self.total += len(batch)
        if not self.following:
            self.unseen += len(batch)
        if self.max_lines and len(batch) > self.max_lines:
            batch = batch[-self.max_lines :]  # only the tail can be shown anyway
        self.write_lines(batch, scroll_end=False)
        if self.following:
            self.scroll_end(animate=False)
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        if self.unseen and not self.following:
            self.border_subtitle = f"↓ {self.unseen} new (G: latest)"
        else:
            self.unseen = 0
            self.border_subtitle = f"{self.total} events"

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Scrolled up by the person: stay put and count; back at the bottom: follow again.
        following = new >= self.max_scroll_y
        if following != self.following:
            self.following = following
            if following:
                self.unseen = 0
            self._update_subtitle()

    def action_tail(self) -> None:
        self.scroll_end(animate=False)
        self.following = True
        self.unseen = 0
        self._update_subtitle()

    def action_top(self) -> None:
        self.scroll_home(animate=False)
