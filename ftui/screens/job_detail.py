"""Job detail: what the job is, how it is going, and every event it sent, live.

The first frame comes from the app's job list or the cache; the events come from the cache at
once and then from the client's ``follow`` (which reconnects by itself after any network error
and resumes exactly where it was). Metric events feed a small loss chart, redrawn at most once a
second.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.widgets import Footer, Header, Static

from ftui.cache import read_off_thread
from ftui.fmt import fmt_time
from ftui.textsafe import visible
from ftui.widgets.base import FtuiScreen, StaleNotice
from ftui.widgets.chart import Line, MetricChart
from ftui.widgets.event_log import EventLog
from ftui.widgets.status import status_text

if TYPE_CHECKING:
    from ftui.types import Checkpoint, Job, JobEvent

CHART_EVERY = 1.0
SMOOTHING = 0.6
LIVE_KEYS = (("train_loss", "train loss"), ("valid_loss", "valid loss"))


class LiveSeries:
    """Points that arrive in step order, with their EMA kept up to date one point at a time
    (a job of 100,000 steps redraws without recomputing anything)."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []
        self.smooth: list[float] = []
        self._last = 0.0
        self._debias = 1.0

    def append(self, x: float, y: float) -> None:
        self.x.append(x)
        self.y.append(y)
        self._last = self._last * SMOOTHING + (1 - SMOOTHING) * y
        self._debias *= SMOOTHING
        self.smooth.append(self._last / (1 - self._debias))


YIELD_EVERY = 2_000  # events handled between two yields to the event loop


def _hp_text(hp: dict[str, Any]) -> str:
    short = {"learning_rate_multiplier": "lr_mult", "prompt_loss_weight": "prompt_loss_w"}
    parts = []
    for key, value in hp.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        parts.append(f"{short.get(key, key)}={value}")
    return "  ".join(parts) or "—"


class JobDetailScreen(FtuiScreen):
    """One job: hyperparameters, files, model, error, checkpoints, live events and loss."""

    BINDINGS = [
        Binding("o", "results", "Results", id="detail.results"),
        Binding("c", "cancel_job", "Cancel", id="detail.cancel"),
        Binding("p", "pause_resume", "Pause/resume", id="detail.pause"),
        Binding("y", "copy_model", "Copy model", id="detail.copy"),
        Binding("t", "try_model", "Try in console", id="detail.try"),
        Binding("r", "refresh", "Refresh", id="detail.refresh", show=False),
    ]

    WORKER_WHAT = {
        "follow": "Following the job",
        "cancel": "Cancelling the job",
        "pause": "Pausing/resuming the job",
        "checkpoints": "Loading checkpoints",
        "refresh": "Refreshing the job",
        "results": "Loading results",
    }

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.title = f"Job {job_id}"  # before mount: the Header watches it once mounted
        self.job: Job | None = None
        self.checkpoints: list[Checkpoint] | None = None
        self.checkpoint_note = ""
        self.metrics: dict[int, dict[str, Any]] = {}
        self.live: dict[str, LiveSeries] = {k: LiveSeries() for k, _ in LIVE_KEYS}
        self._last_step = -1
        self._live_stale = False
        self.total_steps: int | None = None
        self.events_seen = 0
        self.follow_done = False
        self.last_error_event: str | None = None
        self._chart_dirty = False
        self._chart_drawn_at = 0.0
        self._info_dirty = False

    # -- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("the cached job state", id="stale")
        yield Static("", id="detail-error", classes="-hidden")
        with Horizontal(id="detail-top"):
            yield Static("", id="detail-info")
            yield MetricChart("Loss appears here as the job trains", id="detail-chart")
        yield EventLog(id="detail-events")
        yield Footer()

    def on_mount(self) -> None:
        self.job = self.ftui.jobs.get(self.job_id)  # else from the cache, in the follow worker
        self._render_job()
        self.ftui.jobs_changed.subscribe(self, self._jobs_changed)
        self.set_interval(CHART_EVERY, self._maybe_redraw_chart)
        self.query_one(EventLog).focus()
        self._follow()
        self._load_checkpoints()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < 110, "-narrow")

    # -- rendering -----------------------------------------------------------------------------
    def _render_job(self) -> None:
        info = self.query_one("#detail-info", Static)
        job = self.job
        if job is None:
            info.update(Text(f"{self.job_id}\nLoading…", style="dim"))
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        head = status_text(job.status, job.state)
        head.append(f"  {visible(job.id)}", style="bold")
        grid.add_row("Status", head)
        # visible(): what the server sends never reaches the terminal as escape sequences
        grid.add_row("Base model", Text(visible(job.model or "—")))
        grid.add_row("Fine-tuned", Text(visible(job.fine_tuned_model or "— (when it succeeds)")))
        when = "created " + fmt_time(job.created_at, seconds=True, missing="—")
        if job.finished_at:
            when += " · finished " + fmt_time(job.finished_at, seconds=True)
        grid.add_row("When", Text(when))
        files = [f"train {self._file_name(job.training_file)}"]
        if job.validation_file:
            files.append(f"valid {self._file_name(job.validation_file)}")
        if job.result_files:
            files.append(f"results {', '.join(job.result_files)}")
        grid.add_row("Files", Text(visible(" · ".join(files))))
        hp = dict(job.hyperparameters)
        if job.seed is not None:
            hp["seed"] = job.seed
        if job.suffix:
            hp["suffix"] = job.suffix
        grid.add_row("Hyperparams", Text(visible(_hp_text(hp))))
        grid.add_row("Progress", Text(self._progress_text(job)))
        grid.add_row("Checkpoints", Text(self._checkpoints_text()))
        info.update(grid)
        self.refresh_bindings()
        banner = self.query_one("#detail-error", Static)
        reason = self._failure_reason()
        banner.set_class(reason is None, "-hidden")
        if reason is not None:
            # The reason comes from the server: never let it send escape codes to the terminal.
            banner.update(Text(f"✖ FAILED: {visible(reason)}", style="bold"))

    def _file_name(self, file_id: str | None) -> str:
        if not file_id:
            return "—"
        job = self.job
        obj = job.files.get(file_id) if job else None
        return f"{file_id} ({obj.filename})" if obj and obj.filename else file_id

    def _progress_text(self, job: Job) -> str:
        if job.state == "succeeded":
            text = "done"
        else:
            last = max(self.metrics) if self.metrics else None
            total = self.total_steps
            if last is not None and total:
                text = f"step {last}/{total} ({100 * last // total}%)"
            elif last is not None:
                text = f"step {last}"
            else:
                text = job.state
            finish = job.raw.get("estimated_finish")
            if isinstance(finish, int | float) and finish and not job.is_terminal:
                left = max(0, int(finish - time.time()))
                text += f" · ETA {left // 60}m{left % 60:02d}s"
        if job.trained_tokens:
            text += f" · {job.trained_tokens:,} tokens"
        return text

    def _checkpoints_text(self) -> str:
        if self.checkpoints is None:
            return self.checkpoint_note or "…"
        if not self.checkpoints:
            return "none yet"
        ordered = sorted(self.checkpoints, key=lambda c: c.step_number)
        return " · ".join(f"step {c.step_number}: {c.fine_tuned_model_checkpoint}" for c in ordered)

    def _failure_reason(self) -> str | None:
        job = self.job
        if job is None or job.state != "failed":
            return None
        if job.error and job.error.message:
            return job.error.message
        return self.last_error_event or "the server gave no reason"

    def _jobs_changed(self, _: object = None) -> None:
        job = self.ftui.jobs.get(self.job_id)
        if job is not None and job != self.job:
            self.job = job
            self._render_job()

    # -- events ----------------------------------------------------------------------------------
    def _take_events(self, events: list[JobEvent]) -> None:
        self.query_one(EventLog).add_events(events)
        self.events_seen += len(events)
        for event in events:
            data = event.data
            if event.type == "metrics" and isinstance(data, dict):
                step = data.get("step")
                if isinstance(step, int):
                    self.metrics[step] = dict(data)
                    self._add_live(step, data)
                    if isinstance(data.get("total_steps"), int):
                        self.total_steps = data["total_steps"]
                    self._chart_dirty = True
            if event.level == "error":
                self.last_error_event = event.message
        self._info_dirty = True

    def _add_live(self, step: int, data: dict[str, Any]) -> None:
        if step <= self._last_step:  # a step seen again (after a resume): rebuild at the draw
            self._live_stale = True
            return
        self._last_step = step
        for key, _label in LIVE_KEYS:
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.live[key].append(step, float(value))

    def _rebuild_live(self) -> None:
        self.live = {k: LiveSeries() for k, _ in LIVE_KEYS}
        self._last_step = -1
        self._live_stale = False
        for step in sorted(self.metrics):
            self._add_live(step, self.metrics[step])

    @work(name="follow", group="follow", exclusive=True, exit_on_error=False)
    async def _follow(self) -> None:
        cache = self.ftui.cache
        if self.job is None:
            self.job = await read_off_thread(cache.get_job, self.job_id)
        cached = await read_off_thread(cache.events, self.job_id, default=[])
        for start in range(0, len(cached), YIELD_EVERY):
            self._take_events(cached[start : start + YIELD_EVERY])
            await asyncio.sleep(0)  # let the app draw between big batches
        known = len(cached)
        self._render_job()
        client = await self.ftui.api()
        position = 0
        async for event in client.follow(self.job_id, from_start=True, mode="poll"):
            position += 1
            if position <= known:  # shown from the cache already
                if position % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                continue
            self._take_events([event])
            self.ftui.report_ok()
            if event.message.startswith("Checkpoint"):
                self._load_checkpoints()
        self.follow_done = True
        job = await client.jobs.retrieve(self.job_id)
        self.ftui.report_ok()
        self.job = job
        self.ftui.job_updated(job)
        self._render_job()
        self._chart_dirty = True
        self._maybe_redraw_chart(force=True)
        self._load_checkpoints()
        if not self.metrics and job.succeeded:
            self._load_results()

    @work(name="results", group="results", exclusive=True, exit_on_error=False)
    async def _load_results(self) -> None:
        """A job of the legacy dialect has no metric events: chart its results file instead."""
        client = await self.ftui.api()
        rows = await client.jobs.results(self.job_id)
        for row in rows:
            step = row.step
            if step is not None:
                data = {k: v for k, v in row.items()}
                data.setdefault("train_loss", row.get("training_loss"))
                data.setdefault("valid_loss", row.get("validation_loss"))
                self.metrics[step] = data
        self._live_stale = True
        self._chart_dirty = True
        self._maybe_redraw_chart(force=True)

    def _maybe_redraw_chart(self, force: bool = False) -> None:
        if self._info_dirty:
            self._info_dirty = False
            self._render_job()
        if not self._chart_dirty:
            return
        if not force and time.monotonic() - self._chart_drawn_at < CHART_EVERY:
            return
        self._chart_dirty = False
        self._chart_drawn_at = time.monotonic()
        if self._live_stale:
            self._rebuild_live()
        lines = []
        for colour, (key, label) in enumerate(LIVE_KEYS):
            live = self.live[key]
            if not live.x:
                continue
            if len(live.x) > 20:
                lines.append(Line(label, live.x, live.y, colour, "raw", legend=False))
                lines.append(Line(label, live.x, live.smooth, colour, "smooth"))
            else:
                lines.append(Line(label, live.x, live.y, colour))
        self.query_one(MetricChart).plot(lines, xlabel="step")
        self._render_job()

    # -- checkpoints -----------------------------------------------------------------------------
    @work(name="checkpoints", group="checkpoints", exclusive=True, exit_on_error=False)
    async def _load_checkpoints(self) -> None:
        from ftui.client import APIConnectionError, UnsupportedError

        try:
            client = await self.ftui.api()
            self.checkpoints = await client.jobs.checkpoints(self.job_id)
        except UnsupportedError:
            self.checkpoints = None
            self.checkpoint_note = "not offered by this API (legacy dialect)"
        except APIConnectionError:
            self.checkpoint_note = "unknown (offline)"
        self._render_job()

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys that cannot apply to this job are hidden from the footer, not just greyed.
        job = self.job
        if action == "cancel_job":
            return job is not None and not job.is_terminal
        if action == "pause_resume":
            return job is not None and job.state in ("running", "paused")
        if action in ("copy_model", "try_model"):
            return job is not None and bool(job.fine_tuned_model)
        return True

    def action_results(self) -> None:
        self.ftui.open_results([self.job_id])

    def action_copy_model(self) -> None:
        model = self.job.fine_tuned_model if self.job else None
        if not model:
            self.notify("This job has no fine-tuned model yet", severity="warning")
            return
        self.app.copy_to_clipboard(model)
        self.notify(f"Copied {model}", title="Clipboard (OSC 52)", markup=False)

    def action_try_model(self) -> None:
        job = self.job
        if job is None or not job.fine_tuned_model:
            self.notify("This job has no fine-tuned model yet", severity="warning")
            return
        self.ftui.open_console(model=job.fine_tuned_model, compare_with=job.model or None)

    def action_refresh(self) -> None:
        self._refresh()
        self._load_checkpoints()

    @work(name="refresh", group="refresh", exclusive=True, exit_on_error=False)
    async def _refresh(self) -> None:
        client = await self.ftui.api()
        job = await client.jobs.retrieve(self.job_id)
        self.ftui.report_ok()
        self.job = job
        self.ftui.job_updated(job)
        self._render_job()

    def action_cancel_job(self) -> None:
        if self.job is not None and not self.job.is_terminal:
            self._cancel()

    @work(name="cancel", group="job-action", exit_on_error=False)
    async def _cancel(self) -> None:
        from ftui.screens.confirm import ConfirmScreen

        if not await self.app.push_screen_wait(ConfirmScreen(f"Cancel job {self.job_id}?")):
            return
        client = await self.ftui.api()
        job = await client.jobs.cancel(self.job_id)
        self.ftui.report_ok()
        self.job = job
        self.ftui.job_updated(job)
        self._render_job()

    def action_pause_resume(self) -> None:
        if self.job is not None and self.job.state in ("running", "paused"):
            self._pause_resume(self.job.state == "paused")

    @work(name="pause", group="job-action", exit_on_error=False)
    async def _pause_resume(self, resume: bool) -> None:
        client = await self.ftui.api()
        job = await (client.jobs.resume(self.job_id) if resume else client.jobs.pause(self.job_id))
        self.ftui.report_ok()
        self.job = job
        self.ftui.job_updated(job)
        self._render_job()
