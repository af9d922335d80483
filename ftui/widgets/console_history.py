"""The completion console's prompt history, kept on disk, and the modal that searches it.

One JSON object a line in ``<user data dir>/ftui/console_history.jsonl``: the prompt, the
model(s) and the parameters as typed, and when. Appending is one ``write`` of one line (a crash
loses at most that line); a line that does not parse is skipped. When the file holds more than
twice ``MAX_ENTRIES`` lines it is rewritten (temp file + rename) with the newest ``MAX_ENTRIES``.
Every function here does disk I/O: the console calls them from worker threads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

MAX_ENTRIES = 500
FILE_NAME = "console_history.jsonl"


def default_history_path() -> Path:
    from ftui.config import data_dir

    return data_dir() / FILE_NAME


class PromptHistory:
    """Prompt history in a JSONL file (oldest first in the file, ``entries`` the same)."""

    def __init__(self, path: Path | str | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        self.max_entries = max_entries
        self.entries: list[dict[str, Any]] = []

    def load(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        lines = 0
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    lines += 1
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict) and isinstance(entry.get("prompt"), str):
                        entries.append(entry)
        except FileNotFoundError:
            pass
        self.entries = entries[-self.max_entries :]
        if lines > 2 * self.max_entries:
            self._rewrite()
        return self.entries

    def add(
        self,
        prompt: str,
        *,
        model: str | None,
        compare_with: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Append an entry (not when it repeats the newest one); returns it, or None."""
        entry = {
            "prompt": prompt,
            "model": model,
            "compare_with": compare_with,
            "params": dict(params or {}),
            "time": int(time.time()),
        }
        last = self.entries[-1] if self.entries else None
        if last is not None and all(
            last.get(k) == entry[k] for k in ("prompt", "model", "compare_with", "params")
        ):
            return None
        self.entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if len(self.entries) > self.max_entries:
            self.entries = self.entries[-self.max_entries :]
        return entry

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for entry in self.entries:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)


def _one_line(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class HistoryScreen(ModalScreen["dict[str, Any] | None"]):
    """Search the prompt history (newest first); enter picks an entry, esc closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="history.close"),
    ]

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__()
        self.entries = list(reversed(entries))
        self.shown: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="search the prompt history", id="history-filter", compact=True)
            yield OptionList(id="history-list")
            yield Label("↑/↓ choose · enter restores prompt, models and parameters · esc closes")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one(Input).focus()

    def _fill(self, query: str) -> None:
        words = query.lower().split()
        self.shown = [
            e
            for e in self.entries
            if all(w in (e.get("prompt", "") + " " + str(e.get("model"))).lower() for w in words)
        ]
        box = self.query_one(OptionList)
        box.clear_options()
        for e in self.shown:
            models = str(e.get("model") or "?")
            if e.get("compare_with"):
                models += f" vs {e['compare_with']}"
            box.add_option(Option(f"{_one_line(e.get('prompt', ''))}  · {models}"))
        if self.shown:
            box.highlighted = 0

    @on(Input.Changed, "#history-filter")
    def _changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#history-filter")
    def _submitted(self) -> None:
        box = self.query_one(OptionList)
        if box.highlighted is not None and self.shown:
            self.dismiss(self.shown[box.highlighted])

    def on_key(self, event) -> None:
        if event.key in ("up", "down") and self.query_one(Input).has_focus:
            box = self.query_one(OptionList)
            if event.key == "down":
                box.action_cursor_down()
            else:
                box.action_cursor_up()
            event.stop()
            event.prevent_default()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.shown[event.option_index])

    def action_close(self) -> None:
        self.dismiss(None)
