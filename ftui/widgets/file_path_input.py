"""A one-line input for a local path that completes as you type.

The completion of the last path component is shown greyed after the cursor (right or ``tab``
accepts it); when several entries match, ``tab`` completes their common prefix and the matches
are listed under the input. Directories complete with a trailing ``/``. ``~`` is expanded.
Listing a directory happens off the event loop (a thread), so a slow disk never freezes the UI.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input

MAX_MATCHES = 200


def list_matches(value: str, cwd: str | None = None) -> list[str]:
    """Completions of ``value`` (as typed): whole values, directories ending with ``/``.

    Hidden entries are offered only when the typed name starts with a dot. Sorted, at most
    ``MAX_MATCHES``. Never raises on an unreadable or missing directory (no matches).
    """
    if not value:
        return []
    head, _, name = value.rpartition("/")
    directory = (head + "/" if head else "/") if "/" in value else ""
    folder = os.path.expanduser(directory) if directory else "."
    if cwd and not os.path.isabs(folder):
        folder = os.path.join(cwd, folder)
    out: list[str] = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if not entry.name.startswith(name):
                    continue
                if entry.name.startswith(".") and not name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                out.append(directory + entry.name + ("/" if is_dir else ""))
                if len(out) >= MAX_MATCHES:
                    break
    except OSError:
        return []
    return sorted(out)


def common_prefix(items: list[str]) -> str:
    return os.path.commonprefix(items) if items else ""


class PathSuggester(Suggester):
    """Suggests the unique completion, or the common prefix of several, of the typed path."""

    def __init__(self, cwd: str | None = None) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.cwd = cwd

    async def get_suggestion(self, value: str) -> str | None:
        matches = await asyncio.to_thread(list_matches, value, self.cwd)
        prefix = common_prefix(matches)
        return prefix if len(prefix) > len(value) else None


class PathInput(Input):
    """An Input for a local file path with completion (``tab`` / right arrow)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete path", id="path.complete", show=False),
    ]

    DEFAULT_CSS = """
    PathInput { width: 1fr; }
    """

    def __init__(self, value: str = "", *, cwd: str | None = None, **kwargs) -> None:
        kwargs.setdefault("placeholder", "path to a local file (tab completes)")
        super().__init__(value, suggester=PathSuggester(cwd), **kwargs)
        self.cwd = cwd
        self.matches: list[str] = []

    @property
    def path(self) -> Path:
        """The typed path, ``~`` expanded, relative to ``cwd`` when given."""
        p = Path(os.path.expanduser(self.value.strip()))
        if self.cwd and not p.is_absolute():
            p = Path(self.cwd) / p
        return p

    async def action_complete(self) -> None:
        """Complete to the common prefix of the matches; with nothing to add, move focus on."""
        value = self.value
        matches = await asyncio.to_thread(list_matches, value, self.cwd)
        self.matches = matches
        prefix = common_prefix(matches)
        if len(prefix) > len(value):
            self.value = prefix
            self.cursor_position = len(prefix)
            self.post_message(self.Completed(self, matches))
        elif len(matches) > 1:
            self.post_message(self.Completed(self, matches))
        else:
            self.screen.focus_next()

    class Completed(Message):
        """Tab was pressed: ``matches`` are the entries that fit what is typed now."""

        def __init__(self, input: PathInput, matches: list[str]) -> None:
            super().__init__()
            self.input = input
            self.matches = matches

        @property
        def control(self) -> PathInput:
            return self.input
