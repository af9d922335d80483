"""Jobs: the home screen. Every job of the profile, from the cache at once, then the server's.

Rows change in place when only statuses or progress move; the rows are set again only when the
set or order of visible rows changes. The table draws only the lines on screen
(:class:`ftui.widgets.jobs_table.JobsTable`), so ten thousand jobs cost what forty do.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input, Static

from ftui.cache import read_off_thread
from ftui.fmt import fmt_clock, fmt_time
from ftui.textsafe import one_line
from ftui.widgets.base import FtuiScreen, StaleNotice
from ftui.widgets.jobs_table import JobsTable
from ftui.widgets.status import status_text

if TYPE_CHECKING:
    from ftui.types import Job

COLUMNS = (
    ("mark", " "),
    ("status", "Status"),
    ("id", "Job"),
    ("progress", "Progress"),
    ("eta", "ETA"),
    ("model", "Base model"),
    ("ft", "Fine-tuned model"),
    ("created", "Created"),
)
SORTS = (
    ("created", "newest first"),
    ("created_asc", "oldest first"),
    ("status", "by status"),
    ("model", "by base model"),
)
STATE_ORDER = {"running": 0, "paused": 1, "pending": 2, "failed": 3, "succeeded": 4, "cancelled": 5}
SAMPLE_DATASET = "sample_sentiment.jsonl"


def sample_dataset_path() -> str:
    """The bundled sample dataset (a small sentiment classification set)."""
    return str(resources.files("ftui") / "data" / SAMPLE_DATASET)


def fmt_eta(job: Job, now: float | None = None) -> str:
    if job.is_terminal:
        return ""
    finish = job.raw.get("estimated_finish")
    if not isinstance(finish, int | float) or not finish:
        return ""
    left = finish - (now if now is not None else time.time())
    if left <= 0:
        return "soon"
    if left < 90:
        return f"{int(left)}s"
    if left < 5400:
        return f"{round(left / 60)}m"
    return f"{left / 3600:.1f}h"


def fmt_progress(job: Job, progress: tuple[int, int | None] | None) -> str:
    if job.state == "succeeded":
        return "done"
    if progress is None:
        return ""
    step, total = progress
    if total:
        return f"{step}/{total} {100 * step // total}%"
    return f"step {step}"


def matches(job: Job, words: list[str]) -> bool:
    hay = " ".join(
        str(x or "")
        for x in (job.id, job.status, job.state, job.model, job.fine_tuned_model, job.suffix)
    ).lower()
    return all(w in hay for w in words)


class JobsScreen(FtuiScreen):
    """Every job of the active profile: filter, sort, refresh, new, cancel, pause/resume, open."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="jobs.open"),
        Binding("n", "new_job", "New job", id="jobs.new"),
        Binding("slash", "filter", "Filter", id="jobs.filter", key_display="/"),
        Binding("s", "sort", "Sort", id="jobs.sort"),
        Binding("r", "refresh", "Refresh", id="jobs.refresh"),
        Binding("c", "cancel_job", "Cancel job", id="jobs.cancel"),
        Binding("p", "pause_resume", "Pause/resume", id="jobs.pause"),
        Binding("o", "results", "Results", id="jobs.results"),
        Binding("space", "mark", "Mark to compare", id="jobs.mark", show=False),
        Binding("t", "try_sample", "Try the sample", id="jobs.sample", show=False),
    ]

    WORKER_WHAT = {"cancel": "Cancelling the job", "pause": "Pausing/resuming the job"}

    def __init__(self) -> None:
        super().__init__()
        self.filter_words: list[str] = []
        self.sort_index = 0
        self.marked: set[str] = set()
        self._shown: list[str] = []
        self._cells: dict[str, tuple] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("the cached job list", id="stale")
        yield JobsTable(COLUMNS, id="jobs-table")
        yield Static("", id="jobs-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.ftui.jobs_changed.subscribe(self, self._jobs_changed)
        self.ftui.progress_changed.subscribe(self, self._progress_changed)
        self.ftui.profile_changed.subscribe(self, lambda _p: self._reset_view())
        self.watch(self.app, "online", lambda _online: self.rebuild(), init=False)
        self._load_since()
        self.rebuild()
        self.table.focus()

    @work(name="jobs-since", group="jobs-since", exclusive=True, exit_on_error=False)
    async def _load_since(self) -> None:
        """When the cached list was last seen from the server (for the stale banner)."""
        seen = await read_off_thread(self.ftui.cache.jobs_seen_at)
        self.query_one(StaleNotice).set_since(fmt_clock(seen))

    def _reset_view(self) -> None:
        self.marked.clear()
        self._load_since()
        self.rebuild()

    # -- data ------------------------------------------------------------------------------------
    @property
    def table(self) -> JobsTable:
        return self.query_one("#jobs-table", JobsTable)

    def visible_jobs(self) -> tuple[list[Job], int]:
        """The jobs to show (filtered, sorted) and how many matched."""
        jobs = self.ftui.jobs.all()
        if self.filter_words:
            jobs = [j for j in jobs if matches(j, self.filter_words)]
        key = SORTS[self.sort_index][0]
        if key == "created_asc":
            jobs.reverse()
        elif key == "status":
            jobs.sort(key=lambda j: STATE_ORDER.get(j.state, 9))
        elif key == "model":
            jobs.sort(key=lambda j: j.model)
        return jobs, len(jobs)

    def _row(self, job: Job) -> tuple:
        return (
            "★" if job.id in self.marked else " ",
            status_text(job.status, job.state),
            one_line(job.id),  # what the server sends never reaches the terminal as escapes
            fmt_progress(job, self.ftui.progress.get(job.id)),
            fmt_eta(job),
            one_line(job.model),
            one_line(job.fine_tuned_model or ""),
            fmt_time(job.created_at),
        )

    def _jobs_changed(self, _: object = None) -> None:
        self.rebuild()

    def _progress_changed(self, job_id: str) -> None:
        """A running job moved on: draw its row again, nothing else."""
        job = self.ftui.jobs.get(job_id)
        if job is not None and job_id in self._cells:
            self._cells[job_id] = self._signature(job)
            self.table.update_row(job_id)

    def _signature(self, job: Job) -> tuple:
        """What a row shows, cheaply: the row is drawn again only when this changes."""
        return (
            job.status,
            job.fine_tuned_model,
            self.ftui.progress.get(job.id),
            job.raw.get("estimated_finish"),
            job.id in self.marked,
        )

    def _cells_of(self, job_id: str) -> tuple:
        job = self.ftui.jobs.get(job_id)
        return self._row(job) if job is not None else ("",) * len(COLUMNS)

    def rebuild(self) -> None:
        """Show the current jobs: rows drawn again in place when they are the same rows."""
        table = self.table
        jobs, total = self.visible_jobs()
        ids = [j.id for j in jobs]
        signatures = {j.id: self._signature(j) for j in jobs}
        if ids == self._shown:
            for job_id in ids:
                if self._cells.get(job_id) != signatures[job_id]:
                    table.update_row(job_id)
        else:
            table.set_rows(ids, self._cells_of)
            self._shown = ids
        self._cells = signatures
        table.border_title = f"Jobs · {SORTS[self.sort_index][1]}"
        table.border_subtitle = f"{table.cursor_row + 1}/{len(ids)}" if len(ids) > 1 else ""
        self._update_hint(len(ids), total)
        self.refresh_bindings()

    def _update_hint(self, shown: int, total: int) -> None:
        hint = self.query_one("#jobs-hint", Static)
        everything = len(self.ftui.jobs)
        if everything == 0:
            if self.ftui.online is None:
                text = "Loading jobs…"
            else:
                text = (
                    "No jobs yet. Press n for a new job, or t to try the bundled sample "
                    "dataset (a small sentiment classification set): it trains in minutes."
                )
        elif total == 0:
            text = f"No job matches {' '.join(self.filter_words)!r} (/ to change, esc to clear)"
        else:
            words = " ".join(self.filter_words)
            text = f"{total} of {everything} jobs match {words!r}" if words else ""
        hint.update(text)
        hint.display = bool(text)

    def selected_id(self) -> str | None:
        return self.table.cursor_key

    def selected_job(self) -> Job | None:
        job_id = self.selected_id()
        return self.ftui.jobs.get(job_id) if job_id else None

    @on(JobsTable.RowHighlighted)
    def _highlighted(self) -> None:
        table = self.table
        if table.row_count > 1:
            table.border_subtitle = f"{table.cursor_row + 1}/{table.row_count}"
        self.refresh_bindings()

    @on(JobsTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("cancel_job", "pause_resume", "open", "results", "mark"):
            job = self.selected_job()
            if job is None:
                return None
            if action == "cancel_job":
                return True if not job.is_terminal else None
            if action == "pause_resume":
                return True if job.state in ("running", "paused", "pending") else None
        return True

    def action_open(self) -> None:
        job_id = self.selected_id()
        if job_id:
            self.ftui.open_job(job_id)

    def action_new_job(self) -> None:
        self.ftui.open_new_job()

    def action_try_sample(self) -> None:
        self.ftui.open_new_job(training_file=sample_dataset_path())

    def action_refresh(self) -> None:
        self.ftui.refresh_jobs()
        self.notify("Refreshing jobs…", timeout=2)

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.rebuild()

    def _filter_box(self) -> Input | None:
        found = self.query("#jobs-filter")
        return found.first(Input) if found else None

    def action_filter(self) -> None:
        box = self._filter_box()
        if box is None:  # made on first use: the first frame does without it
            box = Input(
                placeholder="filter: words in id, status, model, suffix (esc clears)",
                id="jobs-filter",
            )
            self.mount(box, before=self.table)
        box.remove_class("-hidden")
        box.focus()

    @on(Input.Changed, "#jobs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_words = event.value.lower().split()
        self.rebuild()

    @on(Input.Submitted, "#jobs-filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def key_escape(self) -> bool:
        box = self._filter_box()
        if box is not None and (box.has_focus or self.filter_words):
            box.value = ""
            box.add_class("-hidden")
            self.table.focus()
            return True
        return False

    def action_mark(self) -> None:
        job_id = self.selected_id()
        if not job_id:
            return
        self.marked.symmetric_difference_update({job_id})
        self.rebuild()

    def action_results(self) -> None:
        ids = [j for j in self._shown if j in self.marked] or (
            [self.selected_id()] if self.selected_id() else []
        )
        if ids:
            self.ftui.open_results([i for i in ids if i])

    def action_cancel_job(self) -> None:
        job = self.selected_job()
        if job is not None and not job.is_terminal:
            self._cancel(job.id)

    @work(name="cancel", group="job-action", exit_on_error=False)
    async def _cancel(self, job_id: str) -> None:
        from ftui.screens.confirm import ConfirmScreen

        if not await self.app.push_screen_wait(ConfirmScreen(f"Cancel job {job_id}?")):
            return
        client = await self.ftui.api()
        job = await client.jobs.cancel(job_id)
        self.ftui.report_ok()
        self.ftui.job_updated(job)
        self.notify(f"{job_id}: {job.status}")

    def action_pause_resume(self) -> None:
        job = self.selected_job()
        if job is not None and job.state in ("running", "paused", "pending"):
            self._pause_resume(job.id, resume=job.state == "paused")

    @work(name="pause", group="job-action", exit_on_error=False)
    async def _pause_resume(self, job_id: str, resume: bool) -> None:
        client = await self.ftui.api()
        job = await (client.jobs.resume(job_id) if resume else client.jobs.pause(job_id))
        self.ftui.report_ok()
        self.ftui.job_updated(job)
        self.notify(f"{job_id}: {job.status}")
