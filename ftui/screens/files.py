"""Files: the profile's uploaded files; upload (checks first), preview, delete, new job.

The list is drawn from the cache first, then refreshed from the server in a worker. Uploading
opens a dialog (:mod:`ftui.screens.upload`) that runs the prepare checks first; preview
(:mod:`ftui.screens.file_preview`) reads only the first 64 KiB of a file from the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from ftui.cache import ProfileCache
from ftui.fmt import fmt_bytes, fmt_time
from ftui.textsafe import visible
from ftui.widgets.base import StaleNotice, TableScreen
from ftui.widgets.table import VimDataTable

if TYPE_CHECKING:
    from ftui.types import FileObject

#: at most this many rows in the table (a DataTable of thousands of rows is slow to lay out)
PAGE = 1000

COLUMNS = (
    ("filename", "File"),
    ("status", "Status"),
    ("bytes", "Size"),
    ("created", "Created"),
    ("purpose", "Purpose"),
    ("id", "ID"),
)

#: file status → glyph (the word is shown too)
STATUS_GLYPH = {
    "processed": "✔",
    "uploaded": "…",
    "pending": "…",
    "error": "✖",
    "deleted": "⊘",
}


def file_status(f: FileObject) -> Text:
    word = visible(f.status or "—")
    glyph = STATUS_GLYPH.get(word, "·")
    style = {"✔": "green", "✖": "bold red", "…": "yellow"}.get(glyph, "")
    return Text(f"{glyph} {word}", style=style)


def file_row(f: FileObject) -> tuple:
    # visible(): what the server sends never reaches the terminal as escape sequences
    return (
        visible(f.filename) or "(no name)",
        file_status(f),
        fmt_bytes(f.bytes),
        fmt_time(f.created_at),
        visible(f.purpose),
        visible(f.id),
    )


class FilesScreen(TableScreen):
    """The files of the active profile."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "upload", "Upload", id="files.upload"),
        Binding("p", "preview", "Preview", id="files.preview"),
        Binding("d", "delete", "Delete", id="files.delete"),
        Binding("n", "new_job", "New job", id="files.new_job"),
        Binding("r", "refresh", "Refresh", id="files.refresh"),
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "files-load": "Refreshing files",
        "files-delete": "Deleting the file",
    }

    TABLE_ID = "files-table"

    def __init__(self) -> None:
        super().__init__()
        self.files: list[FileObject] = []
        self.loaded_from: str | None = None  # "cache" or "server"
        self._select_after: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("the cached file list", id="stale")
        table = VimDataTable(id="files-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("Loading files…", id="files-hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self._load(from_cache=True)

    # -- data --------------------------------------------------------------------------------
    def refresh_files(self, quiet: bool = True) -> None:
        self._load(quiet=quiet)

    @work(name="files-load", group="files-load", exclusive=True, exit_on_error=False)
    async def _load(self, quiet: bool = True, from_cache: bool = False) -> None:
        answered = await self.cache_then_server(
            ProfileCache.list_files,
            lambda client: client.files.list(),
            self._show_loaded,
            what="Refreshing files",
            quiet=quiet,
            from_cache=from_cache,
        )
        if not answered:
            self._hint()

    def _show_loaded(self, files: list[FileObject], source: str) -> None:
        if source == "server" or self.loaded_from is None:  # the cache never hides the server's
            self.show_files(files, source)

    def show_files(self, files: list[FileObject], source: str) -> None:
        table = self.table
        current = self._select_after or self.selected_id()
        self._select_after = None
        self.files = list(files)
        self.loaded_from = source
        table.clear()
        for f in self.files[:PAGE]:
            table.add_row(*file_row(f), key=f.id)
        ids = [f.id for f in self.files[:PAGE]]
        if current in ids:
            table.move_cursor(row=ids.index(current), animate=False)
        self._hint()
        self.refresh_bindings()

    def _hint(self) -> None:
        n = len(self.files)
        if self.loaded_from is None:
            text = "Loading files…"
        elif n == 0:
            text = "No files yet. Press u to upload a local file (the prepare checks run first)."
        else:
            where = " (cached)" if self.loaded_from == "cache" else ""
            text = f"{n} file{'s' if n != 1 else ''}{where}"
            if n > PAGE:
                text += f"; showing the newest {PAGE}"
        self.query_one("#files-hint", Static).update(text)

    def selected_file(self) -> FileObject | None:
        fid = self.selected_id()
        return next((f for f in self.files if f.id == fid), None)

    # -- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("preview", "delete", "new_job") and self.selected_file() is None:
            return None
        return True

    @on(DataTable.RowSelected, "#files-table")
    def _selected(self) -> None:
        self.action_preview()

    def action_refresh(self) -> None:
        self.refresh_files(quiet=False)
        self.notify("Refreshing files…", timeout=2)

    def action_preview(self) -> None:
        from ftui.screens.file_preview import PreviewScreen

        f = self.selected_file()
        if f is not None:
            self.app.push_screen(PreviewScreen(f))

    def action_new_job(self) -> None:
        f = self.selected_file()
        if f is not None:
            self.ftui.open_new_job(f.id)

    def action_upload(self, path: str | None = None) -> None:
        from ftui.screens.upload import UploadScreen

        self.app.push_screen(UploadScreen(path), self._uploaded)

    def _uploaded(self, files: list[FileObject] | None) -> None:
        if not files:
            return
        names = visible(", ".join(f"{f.id} ({f.filename})" for f in files))
        self.notify(f"Uploaded {names}", title="Upload", timeout=6, markup=False)
        known = {f.id for f in self.files}
        self.show_files(list(files) + [f for f in self.files if f.id not in known], "server")
        self._select_after = files[0].id
        self.table.move_cursor(row=0, animate=False)
        self.refresh_files()

    def action_delete(self) -> None:
        f = self.selected_file()
        if f is not None:
            self._delete(f)

    @work(name="files-delete", group="files-delete", exit_on_error=False)
    async def _delete(self, f: FileObject) -> None:
        from ftui.screens.confirm import ConfirmScreen

        name = visible(f"{f.filename} ({f.id})" if f.filename else f.id)
        if not await self.app.push_screen_wait(ConfirmScreen(f"Delete file {name}?")):
            return
        client = await self.ftui.api()
        await client.files.delete(f.id)
        self.ftui.report_ok()
        self.notify(f"Deleted {name}", markup=False)
        self.show_files([x for x in self.files if x.id != f.id], self.loaded_from or "server")
