"""Prepare: run the data checks on a local file, choose the optional fixes, write, upload.

The checks (``ftui.prepare.analyze``) run in a thread: reading a large CSV with pandas takes
a while and must not freeze the screen. Every optional fix starts accepted (as the CLI's
default answer is yes) and is toggled with ``space``; ``f`` writes ``<name>_prepared.jsonl``
(or a train/valid pair) beside the input, never overwriting a file. Then ``u`` uploads the
result and ``n`` uploads it and opens the new-job form with it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static
from textual.worker import Worker

from ftui.messages import PrepareChecked, PrepareFailed
from ftui.textsafe import visible
from ftui.widgets.base import FtuiScreen
from ftui.widgets.file_path_input import PathInput
from ftui.widgets.prepare_check import PrepareCheck
from ftui.widgets.prepare_report import PrepareReportView
from ftui.widgets.upload import UploadProgress

if TYPE_CHECKING:
    from ftui.prepare import Report, Written
    from ftui.types import FileObject


def advice(written: Written) -> list[str]:
    """What to know about the written data: where, how many, separator and stop sequence."""
    from ftui.prepare import show

    lines = list(written.notes)
    if written:
        names = " and ".join(p.name for p in written)
        counts = f"{written.n_train:,} examples"
        if written.valid:
            counts = f"{written.n_train:,} training and {written.n_valid:,} validation examples"
        lines.append(f"✔ Wrote {names} ({counts}) in {Path(written[0]).parent}")
    else:
        lines.append("✔ Nothing needed fixing: the file can be used as it is.")
    if written.separator:
        lines.append(f"Prompts end with `{show(written.separator)}`: end your prompts with it too.")
    if written.stop and written.task_type != "classification":
        lines.append(f"Completions end with `{show(written.stop)}`: use it as the stop sequence.")
    if written.valid and written.n_classes:
        if written.n_classes == 2 and written.positive_class is not None:
            lines.append(
                f"Classification metrics: positive class {written.positive_class!r} "
                "(set it in the new-job form)."
            )
        else:
            lines.append(f"Classification metrics: {written.n_classes} classes.")
    return lines


class PrepareScreen(FtuiScreen):
    """The prepare checks on a local file, with each optional fix a toggle."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "apply", "Apply fixes", id="prepare.apply"),
        Binding("u", "upload", "Upload", id="prepare.upload"),
        Binding("n", "new_job", "New job", id="prepare.new_job"),
        Binding("c", "change_path", "Other file", id="prepare.path"),
        Binding("r", "recheck", "Re-check", id="prepare.recheck", show=False),
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "prepare-apply": "Writing the prepared file",
        "prepare-upload": "Uploading",
    }

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self.initial = path or ""
        self.stage = "path"  # path → checking → report → applying → written → uploading
        self.report: Report | None = None
        self.checked_path: Path | None = None
        self.written: Written | None = None
        self.uploaded: list[FileObject] = []
        self._then_new_job = False
        self.checker = PrepareCheck(
            "File:", self.initial, empty_hint="Type the path of a file to check", id="prepare-check"
        )

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.checker
        yield UploadProgress(id="prepare-progress")
        yield Static("", id="prepare-result", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.view.show_message(
            "Type the path of a training file (CSV, TSV, XLSX, JSON, JSONL or TXT) and press "
            "enter to check it."
        )
        self.path_input.focus()
        if self.initial:
            self.check(Path(self.initial).expanduser())

    # The check widget's parts are built with the screen, so these work before it is mounted
    # (Textual may ask check_action at any time).
    @property
    def view(self) -> PrepareReportView:
        return self.checker.view

    @property
    def path_input(self) -> PathInput:
        return self.checker.path_input

    def _result(self, text: str) -> None:
        self.query_one("#prepare-result", Static).update(text)

    # -- checking ----------------------------------------------------------------------------
    @on(PathInput.Submitted)
    def _submitted(self) -> None:
        self.check(self.checker.path)

    def check(self, path: Path) -> None:
        if self.stage in ("checking", "applying", "uploading"):
            return
        self.stage = "checking"
        self.report = None
        self.written = None
        self.uploaded = []
        self._result("")
        self.checker.check(path, f"Running the checks on {path}…")
        self.refresh_bindings()

    def on_prepare_failed(self, event: PrepareFailed) -> None:
        self.stage = "path"
        self.checked_path = None
        self._result("✖ Fix the file (or pick another) and press enter to check again.")
        self.path_input.focus()
        self.refresh_bindings()

    def on_prepare_checked(self, event: PrepareChecked) -> None:
        self.stage = "report"
        self.checked_path = event.path
        self.report = event.report
        self.view.focus()
        self._explain()
        self.refresh_bindings()

    def _explain(self) -> None:
        report = self.report
        if report is None:
            return
        if report.errors:
            text = "✖ This file has errors no fix can repair (see above); fix it and re-check (r)."
        elif not report.necessary and not report.optional:
            text = "✔ No fixes needed. u uploads it, n uploads it and opens a new job."
        else:
            text = f"{self.view.fixes_text()} · f writes the prepared file"
        self._result(text)

    @on(PrepareReportView.Changed)
    def _changed(self) -> None:
        if self.stage == "report":
            self._explain()
        elif self.stage == "written" and self.report is not None:
            # a choice changed after writing: the written file no longer matches it
            self.stage = "report"
            self.written = None
            self.uploaded = []
            self._explain()
            self.refresh_bindings()

    # -- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.path_input.has_focus and action in ("apply", "upload", "new_job", "recheck"):
            return False  # the letters go into the path
        ok_report = self.report is not None and not self.report.errors
        if action == "apply":
            return True if self.stage == "report" and ok_report else None
        if action in ("upload", "new_job"):
            ready = self.stage == "written" or (
                self.stage == "report"
                and ok_report
                and self.report is not None
                and not self.report.necessary
                and not self.view.accepted
            )
            return True if ready else None
        if action == "recheck":
            return True if self.checked_path is not None else None
        return True

    def action_change_path(self) -> None:
        self.path_input.focus()

    def action_recheck(self) -> None:
        if self.checked_path is not None:
            self.check(self.checked_path)

    def action_apply(self) -> None:
        if self.stage == "report" and self.report is not None and not self.report.errors:
            self.stage = "applying"
            self._result("Writing…")
            self.refresh_bindings()
            self._apply(sorted(self.view.accepted))

    @work(name="prepare-apply", group="prepare-apply", exclusive=True, exit_on_error=False)
    async def _apply(self, accepted: list[str]) -> None:
        from ftui.prepare import PrepareError, apply

        assert self.report is not None
        try:
            written = await asyncio.to_thread(apply, self.report, accepted)
        except (PrepareError, OSError, ValueError) as exc:
            self.stage = "report"
            self._result(f"✖ Could not write: {exc}")
            self.refresh_bindings()
            return
        self.written = written
        self.stage = "written"
        self._result(
            "\n".join(advice(written)) + "\nu uploads it · n uploads it and opens a new job"
        )
        self.refresh_bindings()

    def _paths(self) -> list[Path]:
        w = self.written
        if w:
            return [p for p in (w.train, w.valid) if p] or list(w)
        return [self.checked_path] if self.checked_path is not None else []

    def action_upload(self) -> None:
        self._start_upload(new_job=False)

    def action_new_job(self) -> None:
        if self.uploaded:
            self._open_new_job()
            return
        self._start_upload(new_job=True)

    def _start_upload(self, *, new_job: bool) -> None:
        if self.check_action("upload", ()) is not True:
            return
        if self.uploaded and not new_job:
            self.notify("Already uploaded: " + ", ".join(f.id for f in self.uploaded))
            return
        self._then_new_job = new_job
        self.stage = "uploading"
        self._result("")
        self.refresh_bindings()
        self._upload(self._paths())

    def _stage_after_upload(self) -> None:
        self.stage = "written" if self.written is not None else "report"
        self.refresh_bindings()

    @work(name="prepare-upload", group="prepare-upload", exclusive=True, exit_on_error=False)
    async def _upload(self, paths: list[Path]) -> None:
        client = await self.ftui.api()
        uploaded = await self.query_one(UploadProgress).upload(client, paths)
        self.ftui.report_ok()
        self.uploaded = uploaded
        names = visible(", ".join(f"{f.id} ({f.filename})" for f in uploaded))
        self._result(f"✔ Uploaded {names}")
        self.notify(f"Uploaded {names}", title="Upload", markup=False)
        self._stage_after_upload()
        if self._then_new_job:
            self._open_new_job()

    def worker_failed(self, worker: Worker, error: BaseException) -> None:
        if worker.group == "prepare-upload":
            self._result(f"✖ Upload failed: {error}")
            self._stage_after_upload()

    def _open_new_job(self) -> None:
        if not self.uploaded:
            return
        train = self.uploaded[0]
        if len(self.uploaded) > 1:
            self.notify(
                f"Validation file: {self.uploaded[1].id}; pick it in the form",
                timeout=8,
                markup=False,
            )
        self.ftui.open_new_job(train.id)
