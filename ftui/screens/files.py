"""Files: the profile's uploaded files; upload (checks first), preview, delete, new job.

The list is drawn from the cache first, then refreshed from the server in a worker. Uploading
opens a small dialog: a path input that completes paths, then the prepare checks run in a
thread and their report is shown with the fixes one key away (``f`` applies the accepted fixes
and uploads the prepared file(s), ``u`` uploads the file as it is), then a progress bar while the
file streams up. Preview reads only the first 64 KiB of a file from the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Label, Log, ProgressBar, Static
from textual.worker import Worker, WorkerState

from ftui.textsafe import visible
from ftui.widgets.base import StaleNotice, TableScreen
from ftui.widgets.file_path_input import PathInput
from ftui.widgets.prepare_report import PrepareReportView

if TYPE_CHECKING:
    from ftui.prepare import Report
    from ftui.types import FileObject

#: at most this many rows in the table (a DataTable of thousands of rows is slow to lay out)
PAGE = 1000
PREVIEW_BYTES = 64 * 1024
PREVIEW_LINES = 200
MAX_LINE = 1000

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


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def fmt_time(ts: int | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


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


async def upload_paths(
    app: Any,
    paths: list[Path],
    purpose: str,
    bar: ProgressBar,
    status: Static,
    out: list[FileObject] | None = None,
) -> list[FileObject]:
    """Upload ``paths`` in turn with the app's client, showing progress on ``bar``/``status``.

    Each uploaded file is appended to ``out`` as soon as it is up (so a failure half-way keeps
    the ones that made it). Raises the client's errors (OSError for a file it cannot read).
    """
    client = await app.api()
    out = [] if out is None else out
    for i, path in enumerate(paths):
        which = f" ({i + 1}/{len(paths)})" if len(paths) > 1 else ""
        status.update(f"Uploading {path.name}{which}…")
        bar.update(total=None, progress=0)

        def progress(sent: int, total: int) -> None:
            bar.update(total=total, progress=sent)

        out.append(await client.files.create(path, purpose, on_progress=progress))
    app.report_ok()
    return out


# --------------------------------------------------------------------------- preview


class PreviewScreen(ModalScreen[None]):
    """The first lines of an uploaded file."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,p", "close", "Close", id="preview.close"),
    ]

    DEFAULT_CSS = """
    PreviewScreen { align: center middle; }
    PreviewScreen > Vertical {
        width: 100%; height: 100%; max-width: 140; border: thick $accent; background: $surface;
    }
    PreviewScreen #preview-title { height: auto; padding: 0 1; text-style: bold; }
    PreviewScreen Log { height: 1fr; }
    PreviewScreen #preview-foot { height: 1; padding: 0 1; color: $text-muted; }
    """

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
        from ftui.client import APIError

        app: Any = self.app
        foot = self.query_one("#preview-foot", Static)
        try:
            client = await app.api()
            data, more = await client.files.head(self.file.id, PREVIEW_BYTES)
        except APIError as exc:
            foot.update(f"✖ could not load the file: {exc}")
            app.report_error(exc, f"Previewing {self.file.id}")
            return
        app.report_ok()
        lines = preview_lines(data, more)
        self.lines = lines
        self.query_one(Log).write_lines(lines)
        total = "" if not more else f" (first {len(data) // 1024} KiB; the file is longer)"
        foot.update(f"{len(lines)} lines{total} · esc closes")

    def action_close(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.app.report_error(event.worker.error, f"Previewing {self.file.id}")  # type: ignore[attr-defined]
            self.query_one("#preview-foot", Static).update("✖ could not load the file")


# --------------------------------------------------------------------------- upload


class UploadScreen(ModalScreen["list[FileObject] | None"]):
    """Pick a local file, run the prepare checks on it, fix or not, upload with progress.

    Dismisses with the uploaded files (training first, then validation when the fixes split
    the data), or None when cancelled.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="upload.cancel"),
        Binding("f", "fix_upload", "Fix + upload", id="upload.fix"),
        Binding("u", "upload_as_is", "Upload as is", id="upload.as_is"),
        Binding("c", "change_path", "Change path", id="upload.path", show=False),
    ]

    DEFAULT_CSS = """
    UploadScreen { align: center middle; }
    UploadScreen > Vertical {
        width: 100%; height: 100%; max-width: 120; max-height: 40;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    UploadScreen #upload-path-row { height: 1; }
    UploadScreen #upload-path-row > Label { width: auto; padding: 0 1 0 0; text-style: bold; }
    UploadScreen #upload-matches { height: auto; max-height: 4; color: $text-muted; }
    UploadScreen #upload-matches.-empty { display: none; }
    UploadScreen PrepareReportView { height: 1fr; }
    UploadScreen #upload-progress { height: 1; }
    UploadScreen #upload-status { height: auto; padding: 0 1; }
    UploadScreen #upload-keys { height: 1; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, path: str | None = None, purpose: str = "fine-tune") -> None:
        super().__init__()
        self.initial = path or ""
        self.purpose = purpose
        self.stage = "path"  # path → checking → report → uploading → done
        self.report: Report | None = None
        self.checked_path: Path | None = None
        self.uploaded: list[FileObject] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            with Horizontal(id="upload-path-row"):
                yield Label("Upload:")
                yield PathInput(self.initial, id="upload-path", compact=True)
            yield Static("", id="upload-matches", markup=False, classes="-empty")
            yield PrepareReportView(id="upload-report")
            yield ProgressBar(id="upload-progress", show_eta=False)
            yield Static("", id="upload-status", markup=False)
            yield Static("", id="upload-keys", markup=False)

    def on_mount(self) -> None:
        self.query_one("#upload-report", PrepareReportView).show_message(
            "Type the path of a local file and press enter: the prepare checks run first."
        )
        self.query_one("#upload-progress", ProgressBar).display = False
        self.query_one("#upload-path", PathInput).focus()
        self._keys()

    def _keys(self) -> None:
        text = {
            "path": "enter: check the file · tab: complete the path · esc: cancel",
            "checking": "checking… · esc: cancel",
            "report": "f: apply the accepted fixes and upload · u: upload as is · "
            "space: toggle fix · c: change path · esc: cancel",
            "uploading": "uploading… · esc: cancel",
            "done": "",
        }[self.stage]
        self.query_one("#upload-keys", Static).update(text)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("fix_upload", "upload_as_is"):
            if self.stage != "report":
                return False
            if self.query_one("#upload-path", PathInput).has_focus:
                return False  # let the letters go into the path
            if action == "fix_upload" and (self.report is None or self.report.errors):
                return None
        if action == "change_path":
            return self.stage == "report" and not self.query_one(PathInput).has_focus
        return True

    # -- path --------------------------------------------------------------------------------
    @on(PathInput.Completed)
    def _completed(self, event: PathInput.Completed) -> None:
        shown = [
            m.rstrip("/").rsplit("/", 1)[-1] + ("/" if m.endswith("/") else "")
            for m in event.matches[:40]
        ]
        more = f" … ({len(event.matches)})" if len(event.matches) > 40 else ""
        self._matches("  ".join(shown) + more)

    def _matches(self, text: str) -> None:
        box = self.query_one("#upload-matches", Static)
        box.update(text)
        box.set_class(not text, "-empty")

    @on(PathInput.Submitted, "#upload-path")
    def _path_submitted(self) -> None:
        if self.stage in ("checking", "uploading"):
            return
        path = self.query_one("#upload-path", PathInput).path
        self._matches("")
        if not str(path).strip() or str(path) == ".":
            self.notify("Type the path of a file to upload", severity="warning")
            return
        self.stage = "checking"
        self._keys()
        self.query_one("#upload-report", PrepareReportView).show_message(
            f"Running the prepare checks on {path}…"
        )
        self._check(path)

    @work(
        name="upload-check", group="upload-check", exclusive=True, thread=True, exit_on_error=False
    )
    def _check(self, path: Path) -> None:
        from ftui.prepare import PrepareError, analyze

        if not path.is_file():
            why = "no such file" if not path.exists() else "not a regular file"
            self.app.call_from_thread(self._check_failed, path, f"{path}: {why}", False)
            return
        try:
            report = analyze(str(path))
        except PrepareError as exc:
            self.app.call_from_thread(self._check_failed, path, exc, True)
            return
        except Exception as exc:  # noqa: BLE001 - a check that breaks must not stop an upload
            self.app.call_from_thread(
                self._check_failed, path, f"the checks failed: {type(exc).__name__}: {exc}", True
            )
            return
        self.app.call_from_thread(self._checked, path, report)

    def _check_failed(self, path: Path, error: Any, exists: bool) -> None:
        view = self.query_one("#upload-report", PrepareReportView)
        self.checked_path = path if exists else None
        self.report = None
        view.show_error(error)
        if exists:
            self.stage = "report"
            view.focus()
            self.query_one("#upload-status", Static).update(
                "The checks could not read this file; u uploads it anyway (the server will "
                "check it too)."
            )
        else:
            self.stage = "path"
            self.query_one("#upload-path", PathInput).focus()
        self._keys()

    def _checked(self, path: Path, report: Report) -> None:
        self.checked_path = path
        self.report = report
        self.stage = "report"
        view = self.query_one("#upload-report", PrepareReportView)
        view.show_report(report)
        view.focus()
        self._status_for_report()
        self._keys()

    def _status_for_report(self) -> None:
        view = self.query_one("#upload-report", PrepareReportView)
        report = self.report
        if report is None:
            return
        if report.errors:
            text = "✖ the file has errors the fixes cannot repair; u uploads it anyway."
        elif not report.necessary and not report.optional:
            text = "✔ no fixes needed: f or u uploads the file."
        else:
            text = f"{view.fixes_text()} by f; u uploads the file unchanged."
        self.query_one("#upload-status", Static).update(text)

    @on(PrepareReportView.Changed)
    def _fixes_changed(self) -> None:
        if self.stage == "report":
            self._status_for_report()

    def action_change_path(self) -> None:
        self.stage = "path"
        self._keys()
        self.query_one("#upload-path", PathInput).focus()

    # -- upload ------------------------------------------------------------------------------
    def action_fix_upload(self) -> None:
        if self.stage != "report" or self.report is None or self.report.errors:
            return
        accepted = set(self.query_one("#upload-report", PrepareReportView).accepted)
        self._start_upload(fix=True, accepted=accepted)

    def action_upload_as_is(self) -> None:
        if self.stage != "report" or self.checked_path is None:
            return
        self._start_upload(fix=False, accepted=set())

    def _start_upload(self, *, fix: bool, accepted: set[str]) -> None:
        self.stage = "uploading"
        self._keys()
        self._upload(fix, accepted)

    @work(name="upload", group="upload", exclusive=True, exit_on_error=False)
    async def _upload(self, fix: bool, accepted: set[str]) -> None:
        from ftui.client import APIError
        from ftui.prepare import PrepareError, apply

        app: Any = self.app
        status = self.query_one("#upload-status", Static)
        bar = self.query_one("#upload-progress", ProgressBar)
        assert self.checked_path is not None
        paths = [self.checked_path]
        if fix and self.report is not None:
            status.update("Applying the fixes…")
            try:
                written = await asyncio.to_thread(apply, self.report, sorted(accepted))
            except (PrepareError, OSError, ValueError) as exc:
                status.update(f"✖ could not write the prepared file: {exc}")
                self.stage = "report"
                self._keys()
                return
            if written:
                paths = [p for p in (written.train, written.valid) if p] or list(written)
        bar.display = True
        try:
            await upload_paths(app, paths, self.purpose, bar, status, self.uploaded)
        except (APIError, OSError) as exc:
            app.report_error(exc, "Uploading")
            status.update(f"✖ upload failed: {exc}")
            self.stage = "report" if self.checked_path else "path"
            self._keys()
            return
        app.report_ok()
        self.stage = "done"
        self._keys()
        self.dismiss(list(self.uploaded))

    def action_cancel(self) -> None:
        for worker in list(self.workers):
            worker.cancel()
        self.dismiss(list(self.uploaded) or None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            what = "Checking the file" if event.worker.group == "upload-check" else "Uploading"
            self.app.report_error(event.worker.error, what)  # type: ignore[attr-defined]
            self.stage = "report" if self.checked_path is not None else "path"
            self.query_one("#upload-status", Static).update(f"✖ {what} failed")
            self._keys()


# --------------------------------------------------------------------------- the screen


class FilesScreen(TableScreen):
    """The files of the active profile."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "upload", "Upload", id="files.upload"),
        Binding("p", "preview", "Preview", id="files.preview"),
        Binding("d", "delete", "Delete", id="files.delete"),
        Binding("n", "new_job", "New job", id="files.new_job"),
        Binding("r", "refresh", "Refresh", id="files.refresh"),
        Binding("j", "cursor(1)", "Down", id="files.down", show=False),
        Binding("k", "cursor(-1)", "Up", id="files.up", show=False),
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "files-refresh": "Refreshing files",
        "files-delete": "Deleting the file",
        "files-cache": "Reading cached files",
    }

    DEFAULT_CSS = """
    FilesScreen #files-table { height: 1fr; }
    FilesScreen #files-hint { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.files: list[FileObject] = []
        self.loaded_from: str | None = None  # "cache" or "server"
        self._select_after: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("the cached file list", id="stale")
        table: DataTable = DataTable(id="files-table", cursor_type="row", zebra_stripes=False)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("Loading files…", id="files-hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self._load_cache()

    @property
    def table(self) -> DataTable:
        return self.query_one("#files-table", DataTable)

    # -- data --------------------------------------------------------------------------------
    @work(name="files-cache", group="files-cache", exit_on_error=False)
    async def _load_cache(self) -> None:
        cache = getattr(self.app, "cache", None)
        if cache is not None:
            with contextlib.suppress(Exception):  # a damaged cache never blocks the list
                cached = await asyncio.to_thread(cache.list_files)
                if cached and self.loaded_from is None:
                    self.show_files(cached, "cache")
        self.refresh_files()

    def refresh_files(self, quiet: bool = True) -> None:
        self._refresh(quiet)

    @work(name="files-refresh", group="files-refresh", exclusive=True, exit_on_error=False)
    async def _refresh(self, quiet: bool = True) -> None:
        from ftui.client import APIConnectionError

        app: Any = self.app
        try:
            client = await app.api()
            files = await client.files.list()
        except APIConnectionError as exc:
            # in the background, offline is said once (the app's notice and the stale banner)
            if not quiet or getattr(app, "online", None) is not False:
                app.report_error(exc, "Refreshing files")
            self._hint()
            return
        app.report_ok()
        self.show_files(files, "server")

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

    def selected_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None

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
        f = self.selected_file()
        if f is not None:
            self.app.push_screen(PreviewScreen(f))

    def action_new_job(self) -> None:
        f = self.selected_file()
        if f is not None:
            self.app.open_new_job(f.id)  # type: ignore[attr-defined]

    def action_upload(self, path: str | None = None) -> None:
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

        app: Any = self.app
        name = visible(f"{f.filename} ({f.id})" if f.filename else f.id)
        if not await app.push_screen_wait(ConfirmScreen(f"Delete file {name}?")):
            return
        client = await app.api()
        await client.files.delete(f.id)
        app.report_ok()
        self.notify(f"Deleted {name}", markup=False)
        self.show_files([x for x in self.files if x.id != f.id], self.loaded_from or "server")
