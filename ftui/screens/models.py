"""Models: the profile's fine-tuned and base models, and the job that produced each.

Fine-tuned models come first (newest first), then the base models. The job column comes from
the app's job list (the cache at once, the server's after), so it needs no request of its own.
Deleting a fine-tuned model asks for its name to be typed; base models cannot be deleted.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from ftui.cache import ProfileCache
from ftui.fmt import fmt_time
from ftui.textsafe import visible
from ftui.widgets.base import StaleNotice, TableScreen
from ftui.widgets.table import VimDataTable

if TYPE_CHECKING:
    from ftui.types import Job, Model

COLUMNS = (
    ("id", "Model"),
    ("kind", "Kind"),
    ("base", "Base"),
    ("job", "Job"),
    ("created", "Created"),
)


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
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "models-load": "Refreshing models",
        "models-delete": "Deleting the model",
    }

    TABLE_ID = "models-table"

    def __init__(self) -> None:
        super().__init__()
        self.models: list[Model] = []
        self.loaded_from: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("the cached model list", id="stale")
        table = VimDataTable(id="models-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("Loading models…", id="models-hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.ftui.jobs_changed.subscribe(self, lambda _=None: self._relink())
        self._load(from_cache=True)

    # -- data --------------------------------------------------------------------------------
    def _jobs_by_model(self) -> dict[str, Job]:
        return {j.fine_tuned_model: j for j in self.ftui.jobs.all() if j.fine_tuned_model}

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

    @work(name="models-load", group="models-load", exclusive=True, exit_on_error=False)
    async def _load(self, quiet: bool = True, from_cache: bool = False) -> None:
        answered = await self.cache_then_server(
            ProfileCache.list_models,
            lambda client: client.models.list(),
            self._show_loaded,
            what="Refreshing models",
            quiet=quiet,
            from_cache=from_cache,
        )
        if not answered:
            self._hint()

    def _show_loaded(self, models: list[Model], source: str) -> None:
        if source == "server" or self.loaded_from is None:  # the cache never hides the server's
            self.show_models(models, source)

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
        self._load(quiet=False)
        self.notify("Refreshing models…", timeout=2)

    def action_console(self) -> None:
        m = self.selected_model()
        if m is not None:
            self.ftui.open_console(model=m.id)

    def action_compare(self) -> None:
        m = self.selected_model()
        if m is not None and m.is_fine_tuned and self.base_of(m):
            self.ftui.open_console(model=m.id, compare_with=self.base_of(m))

    def action_open_job(self) -> None:
        m = self.selected_model()
        job = self.job_of(m) if m is not None else ""
        if job:
            self.ftui.open_job(job)

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

        question = (
            f"Delete the fine-tuned model {visible(model_id)}? Its weights are removed for good."
        )
        if not await self.app.push_screen_wait(ConfirmScreen(question, require_text=model_id)):
            return
        client = await self.ftui.api()
        await client.models.delete(model_id)
        self.ftui.report_ok()
        self.notify(f"Deleted {model_id}", markup=False)
        self.show_models([m for m in self.models if m.id != model_id], self.loaded_from or "server")
