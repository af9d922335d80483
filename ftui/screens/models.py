"""Models: the profile's fine-tuned and base models, and the job that produced each.

Fine-tuned models come first (newest first), then the base models. The job column comes from
the app's job list (the cache at once, the server's after), so it needs no request of its own.
Deleting a fine-tuned model asks for its name to be typed; base models cannot be deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from ftui.textsafe import visible
from ftui.widgets.base import StaleNotice, TableScreen

if TYPE_CHECKING:
    from ftui.types import Job, Model

COLUMNS = (
    ("id", "Model"),
    ("kind", "Kind"),
    ("base", "Base"),
    ("job", "Job"),
    ("created", "Created"),
)


def fmt_time(ts: int | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


def sort_models(models: list[Model]) -> list[Model]:
    tuned = sorted((m for m in models if m.is_fine_tuned), key=lambda m: -(m.created or 0))
    base = sorted((m for m in models if not m.is_fine_tuned), key=lambda m: m.id)
    return tuned + base


class ModelsScreen(TableScreen):
    """Fine-tuned and base models; delete (type the name), open in the console."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,c", "console", "Console", id="models.console"),
        Binding("v", "compare", "vs base", id="models.compare", tooltip="Side by side with base"),
        Binding("o", "open_job", "Open job", id="models.job"),
        Binding("d", "delete", "Delete", id="models.delete"),
        Binding("r", "refresh", "Refresh", id="models.refresh"),
        Binding("j", "cursor(1)", "Down", id="models.down", show=False),
        Binding("k", "cursor(-1)", "Up", id="models.up", show=False),
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "models-refresh": "Refreshing models",
        "models-delete": "Deleting the model",
        "models-cache": "Reading cached models",
    }

    DEFAULT_CSS = """
    ModelsScreen #models-table { height: 1fr; }
    ModelsScreen #models-hint { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.models: list[Model] = []
        self.loaded_from: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("the cached model list", id="stale")
        table: DataTable = DataTable(id="models-table", cursor_type="row", zebra_stripes=False)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("Loading models…", id="models-hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        jobs_changed = getattr(self.app, "jobs_changed", None)
        if jobs_changed is not None:
            jobs_changed.subscribe(self, lambda _=None: self._relink())
        self._load_cache()

    @property
    def table(self) -> DataTable:
        return self.query_one("#models-table", DataTable)

    # -- data --------------------------------------------------------------------------------
    def _jobs_by_model(self) -> dict[str, Job]:
        store = getattr(self.app, "jobs", None)
        jobs = store.all() if store is not None else []
        return {j.fine_tuned_model: j for j in jobs if j.fine_tuned_model}

    def base_of(self, model: Model) -> str:
        job = self._jobs_by_model().get(model.id)
        if job is not None and job.model:
            return job.model
        if model.is_fine_tuned:
            return model.parent or (model.root if model.root != model.id else "") or ""
        return ""

    def job_of(self, model: Model) -> str:
        job = self._jobs_by_model().get(model.id)
        return job.id if job is not None else ""

    def _row(self, m: Model) -> tuple:
        kind = Text("★ fine-tuned", style="bold") if m.is_fine_tuned else Text("base", style="dim")
        job = self.job_of(m) or ("—" if not m.is_fine_tuned else "?")
        # visible(): what the server sends never reaches the terminal as escape sequences
        return (
            visible(m.id),
            kind,
            visible(self.base_of(m)) or "—",
            visible(job),
            fmt_time(m.created),
        )

    @work(name="models-cache", group="models-cache", exit_on_error=False)
    async def _load_cache(self) -> None:
        cache = getattr(self.app, "cache", None)
        if cache is not None:
            with contextlib.suppress(Exception):  # a damaged cache never blocks the list
                cached = await asyncio.to_thread(cache.list_models)
                if cached and self.loaded_from is None:
                    self.show_models(cached, "cache")
        self._refresh()

    @work(name="models-refresh", group="models-refresh", exclusive=True, exit_on_error=False)
    async def _refresh(self, quiet: bool = True) -> None:
        from ftui.client import APIConnectionError

        app: Any = self.app
        try:
            client = await app.api()
            models = await client.models.list()
        except APIConnectionError as exc:
            # in the background, offline is said once (the app's notice and the stale banner)
            if not quiet or getattr(app, "online", None) is not False:
                app.report_error(exc, "Refreshing models")
            self._hint()
            return
        app.report_ok()
        self.show_models(models, "server")

    def show_models(self, models: list[Model], source: str) -> None:
        table = self.table
        current = self.selected_id()
        self.models = sort_models(list(models))
        self.loaded_from = source
        table.clear()
        for m in self.models:
            table.add_row(*self._row(m), key=m.id)
        ids = [m.id for m in self.models]
        if current in ids:
            table.move_cursor(row=ids.index(current), animate=False)
        self._hint()
        self.refresh_bindings()

    def _relink(self) -> None:
        """The job list changed: refresh the base and job columns in place."""
        table = self.table
        for m in self.models:
            row = self._row(m)
            with contextlib.suppress(Exception):  # a row removed meanwhile
                table.update_cell(m.id, "base", row[2])
                table.update_cell(m.id, "job", row[3])

    def _hint(self) -> None:
        tuned = sum(1 for m in self.models if m.is_fine_tuned)
        if self.loaded_from is None:
            text = "Loading models…"
        elif not self.models:
            text = "No models."
        else:
            where = " (cached)" if self.loaded_from == "cache" else ""
            text = f"{tuned} fine-tuned, {len(self.models) - tuned} base{where}"
            if not tuned:
                text += " · fine-tune one from the Jobs screen (n)"
        self.query_one("#models-hint", Static).update(text)

    def selected_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None

    def selected_model(self) -> Model | None:
        mid = self.selected_id()
        return next((m for m in self.models if m.id == mid), None)

    # -- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("console", "compare", "open_job", "delete"):
            m = self.selected_model()
            if m is None:
                return None
            if action == "delete" and not m.is_fine_tuned:
                return None
            if action == "compare" and not (m.is_fine_tuned and self.base_of(m)):
                return None
            if action == "open_job" and not self.job_of(m):
                return None
        return True

    @on(DataTable.RowSelected, "#models-table")
    def _selected(self) -> None:
        self.action_console()

    def action_refresh(self) -> None:
        self._refresh(quiet=False)
        self.notify("Refreshing models…", timeout=2)

    def action_console(self) -> None:
        m = self.selected_model()
        if m is not None:
            self.app.open_console(model=m.id)  # type: ignore[attr-defined]

    def action_compare(self) -> None:
        m = self.selected_model()
        if m is not None and m.is_fine_tuned and self.base_of(m):
            self.app.open_console(model=m.id, compare_with=self.base_of(m))  # type: ignore[attr-defined]

    def action_open_job(self) -> None:
        m = self.selected_model()
        job = self.job_of(m) if m is not None else ""
        if job:
            self.app.open_job(job)  # type: ignore[attr-defined]

    def action_delete(self) -> None:
        m = self.selected_model()
        if m is None:
            return
        if not m.is_fine_tuned:
            self.notify("Base models cannot be deleted", severity="warning")
            return
        self._delete(m.id)

    @work(name="models-delete", group="models-delete", exit_on_error=False)
    async def _delete(self, model_id: str) -> None:
        from ftui.screens.confirm import ConfirmScreen

        app: Any = self.app
        question = (
            f"Delete the fine-tuned model {visible(model_id)}? Its weights are removed for good."
        )
        if not await app.push_screen_wait(ConfirmScreen(question, require_text=model_id)):
            return
        client = await app.api()
        await client.models.delete(model_id)
        app.report_ok()
        self.notify(f"Deleted {model_id}", markup=False)
        self.show_models([m for m in self.models if m.id != model_id], self.loaded_from or "server")
