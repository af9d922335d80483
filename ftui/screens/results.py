"""Results: a job's metrics as terminal charts, several jobs overlaid, and the raw rows.

Rows come from the cache at once, then from the job's results file (or, while the job still
runs, from its metric events). Keys: ``c`` next chart (loss, accuracy, classification), ``x``
step/epoch, ``[``/``]`` smoothing, ``l`` log scale, ``v`` the rows as a table, ``a``/``d`` pin
or unpin another job, ``e`` export the results file.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from ftui.cache import read_off_thread
from ftui.results import (
    CHARTS,
    METRICS,
    Columns,
    available_charts,
    classification_columns,
    ema,
    rows_from_events,
    series,
)
from ftui.widgets.base import FtuiScreen, StaleNotice
from ftui.widgets.chart import Line, MetricChart

if TYPE_CHECKING:
    from ftui.types import Job

SMOOTHING = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99)
CHART_ORDER = ("loss", "accuracy", "classification")
CHART_TITLES = {"loss": "Loss", "accuracy": "Accuracy", "classification": "Classification"}
TABLE_PAGE = 1_000


class ResultsScreen(FtuiScreen):
    """Charts of one or more jobs' results."""

    BINDINGS = [
        Binding("c", "next_chart", "Next chart", id="results.chart"),
        Binding("x", "toggle_x", "Step/epoch", id="results.x"),
        Binding(
            "right_square_bracket",
            "smooth(1)",
            "Smooth+",
            id="results.smooth_more",
            key_display="]",
        ),
        Binding(
            "left_square_bracket",
            "smooth(-1)",
            "Smooth-",
            id="results.smooth_less",
            key_display="[",
        ),
        Binding("l", "toggle_log", "Log scale", id="results.log"),
        Binding("v", "toggle_table", "Rows", id="results.table"),
        Binding("a", "pin", "Pin job", id="results.pin"),
        Binding("d", "unpin", "Unpin", id="results.unpin", show=False),
        Binding("e", "export", "Export", id="results.export"),
        Binding("r", "reload", "Reload", id="results.reload", show=False),
        Binding("full_stop", "page(1)", "Next rows", id="results.next_rows", show=False),
        Binding("comma", "page(-1)", "Previous rows", id="results.prev_rows", show=False),
    ]

    WORKER_WHAT = {"export": "Exporting results", "pin": "Pinning"}

    def __init__(self, job_ids: list[str]) -> None:
        super().__init__()
        self.job_ids: list[str] = list(dict.fromkeys(job_ids))
        self.title = "Results"
        self.rows: dict[str, list[Mapping[str, Any]]] = {}
        self.columns: dict[str, Columns] = {}
        self._ema_cache: dict[tuple, list[float]] = {}
        self.source: dict[str, str] = {}
        self.cached_jobs: dict[str, Job | None] = {}
        self.chart = "loss"
        self.by = "step"
        self.smoothing_index = 2
        self.log_y = False
        self.show_table = False
        self.table_page = 0

    @property
    def smoothing(self) -> float:
        return SMOOTHING[self.smoothing_index]

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("cached results", id="stale")
        yield Static("", id="results-tabs")
        yield MetricChart("Not enough data to draw", id="results-chart")
        yield DataTable(id="results-table", classes="-hidden", cursor_type="row")
        yield Static("", id="results-status")
        yield Footer()

    def on_mount(self) -> None:
        for job_id in self.job_ids:
            self._load(job_id)
        self.redraw()

    # -- data ------------------------------------------------------------------------------------
    def _load(self, job_id: str) -> None:
        self.run_worker(
            self._load_rows(job_id),
            name=f"Loading results of {job_id}",  # what a failure is reported as
            group="load",
            exit_on_error=False,
        )

    async def _load_rows(self, job_id: str) -> None:
        from ftui.client import APIConnectionError, NotFoundError

        cache = self.ftui.cache
        if self.ftui.jobs.get(job_id) is None:  # a job known only to the cache: its epochs
            self.cached_jobs[job_id] = await read_off_thread(cache.get_job, job_id)
        cached = await read_off_thread(cache.results, job_id)
        if cached:
            await self._set_rows(job_id, cached, "cached results file")
        try:
            client = await self.ftui.api()
            rows = await client.jobs.results(job_id)
            self.ftui.report_ok()
            await self._set_rows(job_id, rows, "results file")
        except NotFoundError:
            # No results file yet (the job is still running): chart its metric events so far.
            self.ftui.report_ok()
            events = await client.jobs.events(job_id)
            rows = rows_from_events(events)
            await self._set_rows(job_id, rows, "metric events so far (no results file yet)")
        except APIConnectionError:
            if not cached:
                events = await read_off_thread(cache.events, job_id, default=[])
                await self._set_rows(job_id, rows_from_events(events), "cached metric events")
            raise  # reported by the worker-error route

    async def _set_rows(self, job_id: str, rows: Sequence[Mapping[str, Any]], source: str) -> None:
        columns = await asyncio.to_thread(Columns, rows)  # the per-cell work, once, off the UI
        if job_id not in self.job_ids:
            return
        self.rows[job_id] = list(rows)
        self.columns[job_id] = columns
        self.source[job_id] = source
        self.redraw()

    def n_epochs(self, job_id: str) -> int | None:
        job = self.ftui.jobs.get(job_id) or self.cached_jobs.get(job_id)
        value = job.hyperparameters.get("n_epochs") if job else None
        return value if isinstance(value, int) else None

    def charts_available(self) -> list[str]:
        found: set[str] = set()
        for columns in self.columns.values():
            found.update(available_charts(columns))
        return [c for c in CHART_ORDER if c in found] or ["loss"]

    # -- drawing ---------------------------------------------------------------------------------
    def lines(self) -> tuple[list[Line], str]:
        """The lines of the current chart and a note on anything left out."""
        lines: list[Line] = []
        notes: list[str] = []
        colour = 0
        many = len(self.job_ids) > 1
        for job_id in self.job_ids:
            rows = self.columns.get(job_id)
            if rows is None or not len(rows):
                continue
            by = self.by
            n_epochs = self.n_epochs(job_id) if by == "epoch" else None
            if by == "epoch" and n_epochs is None:
                notes.append(f"{job_id}: epochs unknown, by step")
                by = "step"
            if self.chart == "classification":
                metrics = classification_columns(rows)
            else:
                metrics = list(CHARTS[self.chart][1])
            for metric in metrics:
                label = METRICS[metric][0] if metric in METRICS else metric.split("/", 1)[-1]
                name = f"{short_id(job_id)} {label}" if many else label
                s = series(rows, metric, by=by, n_epochs=n_epochs, name=name)
                if s is None:
                    continue
                if self.smoothing > 0 and len(s) > 2:
                    key = (job_id, metric, self.smoothing, len(s))
                    smooth = self._ema_cache.get(key)
                    if smooth is None:
                        smooth = self._ema_cache[key] = ema(s.y, self.smoothing)
                    lines.append(Line(s.name, s.x, s.y, colour, "raw", legend=False))
                    lines.append(Line(s.name, s.x, smooth, colour, "smooth"))
                else:
                    lines.append(Line(s.name, s.x, s.y, colour))
                colour += 1
        return lines, "; ".join(notes)

    def redraw(self) -> None:
        available = self.charts_available()
        if self.chart not in available:
            self.chart = available[0]
        tabs = Text()
        for key in (*available, "rows"):
            title = CHART_TITLES.get(key, "Rows")
            active = (key == "rows") == self.show_table and (key == "rows" or key == self.chart)
            tabs.append(f" {title} ", style="reverse bold" if active else "dim")
            tabs.append(" ")
        self.query_one("#results-tabs", Static).update(tabs)
        lines, note = self.lines()
        many_jobs = len(self.job_ids) > 1
        smooth = f"smoothing {self.smoothing:g}" if self.smoothing else "no smoothing"
        if self.smoothing:
            smooth += " (faint: raw, bold: smoothed)"
        chart = self.query_one(MetricChart)
        chart.plot(
            lines,
            title=CHART_TITLES[self.chart],
            xlabel=self.by + (" (log y)" if self.log_y else ""),
            log_y=self.log_y,
            note=note,
        )
        status = Text(no_wrap=True, overflow="ellipsis")
        scale = "log" if self.log_y else "linear"
        status.append(f"{smooth} · x by {self.by} · {scale} y\n", style="dim")
        for job_id in self.job_ids:
            rows = self.rows.get(job_id)
            name = short_id(job_id) if many_jobs else job_id
            if rows is None:
                status.append(f"{name}: loading…  ")
            elif not rows:
                status.append(f"{name}: no results yet ({self.source.get(job_id, '')})  ")
            else:
                status.append(f"{name}: {len(rows)} rows, {self.source[job_id]}  ")
        self.query_one("#results-status", Static).update(status)
        if self.show_table:
            self._fill_table()

    def _fill_table(self) -> None:
        table = self.query_one("#results-table", DataTable)
        table.clear(columns=True)
        job_id = self.job_ids[0] if self.job_ids else None
        rows = self.rows.get(job_id, []) if job_id else []
        if not rows:
            table.border_title = "No rows yet"
            return
        columns: dict[str, None] = {}
        for row in rows[:50]:
            columns.update(dict.fromkeys(row))
        for name in columns:
            table.add_column(name, key=name)
        pages = max(1, -(-len(rows) // TABLE_PAGE))
        self.table_page = max(0, min(self.table_page, pages - 1))
        start = self.table_page * TABLE_PAGE
        for row in rows[start : start + TABLE_PAGE]:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        end = min(len(rows), start + TABLE_PAGE)
        table.border_title = f"{job_id}: rows {start + 1}–{end} of {len(rows)}" + (
            "  (, . for other pages)" if pages > 1 else ""
        )

    # -- actions ---------------------------------------------------------------------------------
    def action_next_chart(self) -> None:
        available = self.charts_available()
        if self.show_table:
            self.show_table = False
            self._apply_table_visibility()
        else:
            i = available.index(self.chart) if self.chart in available else -1
            self.chart = available[(i + 1) % len(available)]
        self.redraw()

    def action_toggle_x(self) -> None:
        self.by = "epoch" if self.by == "step" else "step"
        self.redraw()

    def action_smooth(self, delta: int) -> None:
        self.smoothing_index = max(0, min(len(SMOOTHING) - 1, self.smoothing_index + delta))
        self.redraw()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.redraw()

    def action_toggle_table(self) -> None:
        self.show_table = not self.show_table
        self._apply_table_visibility()
        self.redraw()

    def _apply_table_visibility(self) -> None:
        self.query_one(MetricChart).set_class(self.show_table, "-hidden")
        table = self.query_one("#results-table", DataTable)
        table.set_class(not self.show_table, "-hidden")
        if self.show_table:
            table.focus()

    def action_page(self, delta: int) -> None:
        if self.show_table:
            self.table_page += delta
            self._fill_table()

    def action_reload(self) -> None:
        for job_id in self.job_ids:
            self._load(job_id)

    def action_pin(self) -> None:
        self._pin()

    @work(name="pin", group="pin", exit_on_error=False)
    async def _pin(self) -> None:
        from ftui.screens.confirm import PickScreen

        options = [
            (j.id, f"{j.id}  {j.status}  {j.model}  {j.fine_tuned_model or ''}")
            for j in self.ftui.jobs.all()
            if j.id not in self.job_ids
        ]
        if not options:
            self.notify("No other job to pin")
            return
        job_id = await self.app.push_screen_wait(PickScreen("Overlay which job?", options))
        if job_id:
            self.job_ids.append(job_id)
            self.redraw()
            self._load(job_id)

    def action_unpin(self) -> None:
        if len(self.job_ids) > 1:
            removed = self.job_ids.pop()
            self.rows.pop(removed, None)
            self.columns.pop(removed, None)
            self.redraw()

    def action_export(self) -> None:
        self._export()

    @work(name="export", group="export", exit_on_error=False)
    async def _export(self) -> None:
        from ftui.screens.confirm import ConfirmScreen, PromptScreen

        job_id = self.job_ids[0]
        answer = await self.app.push_screen_wait(
            PromptScreen(f"Export the results of {job_id} to:", f"{job_id}_results.csv")
        )
        if not answer:
            return
        path = Path(answer).expanduser()
        if path.is_dir():
            path = path / f"{job_id}_results.csv"
        if path.exists() and not await self.app.push_screen_wait(
            ConfirmScreen(f"{path} exists. Overwrite it?")
        ):
            return
        written = await self._write_export(job_id, path)
        self.notify(f"Exported {written} to {path}", title="Export", markup=False)

    async def _write_export(self, job_id: str, path: Path) -> str:
        from ftui.client import APIConnectionError, NotFoundError

        try:
            client = await self.ftui.api()
            file_id = await client.jobs.results_file(job_id)
            await client.files.content(file_id, path)
            self.ftui.report_ok()
            return f"the results file {file_id}"
        except (NotFoundError, APIConnectionError) as exc:
            rows = self.rows.get(job_id)
            if not rows:
                raise
            if isinstance(exc, APIConnectionError):
                self.ftui.report_error(exc, "Downloading the results file")
            await asyncio.to_thread(write_rows_csv, rows, path)
            return f"{len(rows)} rows ({self.source.get(job_id)})"


def short_id(job_id: str) -> str:
    """The end of a job id, enough to tell pinned jobs apart in a legend."""
    return job_id[-6:]


def write_rows_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Write rows as CSV through a temporary file and a rename (never a half-written file)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow("" if row.get(c) is None else row.get(c) for c in columns)
    tmp.replace(path)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
