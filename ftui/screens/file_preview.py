"""Preview an uploaded file: its first lines, read from the server (the first 64 KiB only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Label, Log, Static
from textual.worker import Worker

from ftui.fmt import fmt_bytes
from ftui.textsafe import visible
from ftui.widgets.base import FtuiModal

if TYPE_CHECKING:
    from ftui.types import FileObject

PREVIEW_BYTES = 64 * 1024
PREVIEW_LINES = 200
MAX_LINE = 1000


def preview_lines(data: bytes, more: bool, n: int = PREVIEW_LINES) -> list[str]:
    """The first ``n`` lines of ``data`` as text, each cut at ``MAX_LINE`` characters."""
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if more and lines and not text.endswith("\n"):
        lines[-1] += " …"  # the last line was cut by the byte limit
    out = []
    for line in lines[:n]:
        line = visible(line)
        out.append(line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …")
    return out


class PreviewScreen(FtuiModal):
    """The first lines of an uploaded file."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,p", "close", "Close", id="preview.close"),
    ]

    def __init__(self, file: FileObject) -> None:
        super().__init__()
        self.file = file
        self.lines: list[str] | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                visible(
                    f"{self.file.filename or self.file.id} · {self.file.id} · "
                    f"{fmt_bytes(self.file.bytes)}"
                ),
                id="preview-title",
                markup=False,
            )
            yield Log(id="preview-log", max_lines=PREVIEW_LINES + 10, highlight=False)
            yield Static("Loading the first lines…", id="preview-foot", markup=False)

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self._load()

    @work(name="preview", group="file-preview", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        client = await self.ftui.api()
        data, more = await client.files.head(self.file.id, PREVIEW_BYTES)
        self.ftui.report_ok()
        lines = preview_lines(data, more)
        self.lines = lines
        self.query_one(Log).write_lines(lines)
        total = "" if not more else f" (first {len(data) // 1024} KiB; the file is longer)"
        self.query_one("#preview-foot", Static).update(f"{len(lines)} lines{total} · esc closes")

    def worker_what(self, worker: Worker) -> str:
        return f"Previewing {self.file.id}"

    def worker_failed(self, worker: Worker, error: BaseException) -> None:
        self.query_one("#preview-foot", Static).update(
            visible(f"✖ could not load the file: {error}")
        )

    def action_close(self) -> None:
        self.dismiss(None)
