"""Upload local files with a progress bar: the one upload routine of the TUI.

Used by the upload dialog, the prepare screen and the new-job form (local paths are uploaded
when the job is created). The bar and its line ("Uploading train.jsonl (1/2)…") show only while
an upload runs. The routine is awaited by the worker that needs the uploaded files (creating a
job goes on with their ids), so a failure is that worker's failure and takes the one error route.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from ftui.textsafe import visible

if TYPE_CHECKING:
    from ftui.client import Client
    from ftui.types import FileObject


class UploadProgress(Vertical):
    """Which file goes up and how far it is."""

    DEFAULT_CSS = """
    UploadProgress { height: auto; display: none; }
    UploadProgress.-active { display: block; }
    UploadProgress > Static { height: 1; padding: 0 1; }
    UploadProgress > ProgressBar { height: 1; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.bar = ProgressBar(show_eta=False)
        self.line = Static("", markup=False)

    def compose(self) -> ComposeResult:
        yield self.line
        yield self.bar

    async def upload(
        self,
        client: Client,
        paths: Sequence[str | Path],
        purpose: str = "fine-tune",
        out: list[FileObject] | None = None,
    ) -> list[FileObject]:
        """Upload ``paths`` in turn; each uploaded file is appended to ``out`` as soon as it is
        up (a failure half-way keeps the ones that made it). Raises the client's errors
        (OSError for a file it cannot read)."""
        out = [] if out is None else out
        self.add_class("-active")
        try:
            for i, path in enumerate(paths):
                name = visible(Path(path).name)
                which = f" ({i + 1}/{len(paths)})" if len(paths) > 1 else ""
                self.line.update(f"Uploading {name}{which}…")
                self.bar.update(total=None, progress=0)
                out.append(await client.files.create(path, purpose, on_progress=self._progress))
        finally:
            self.remove_class("-active")
        return out

    def _progress(self, sent: int, total: int) -> None:
        self.bar.update(total=max(1, total), progress=sent)
