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
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Label, ProgressBar, Static

from ftui.screens.files import upload_paths
from ftui.widgets.base import FtuiScreen
from ftui.widgets.file_path_input import PathInput
from ftui.widgets.prepare_report import PrepareReportView

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
        "prepare-check": "Checking the file",
        "prepare-apply": "Writing the prepared file",
        "prepare-upload": "Uploading",
    }

    DEFAULT_CSS = """
    PrepareScreen #prepare-path-row { height: 1; margin: 1 0 0 0; }
    PrepareScreen #prepare-path-row > Label { width: auto; padding: 0 1; text-style: bold; }
    PrepareScreen #prepare-matches { height: auto; max-height: 3; padding: 0 1; }
    PrepareScreen #prepare-matches { color: $text-muted; }
    PrepareScreen #prepare-matches.-empty { display: none; }
    PrepareScreen PrepareReportView { height: 1fr; }
    PrepareScreen #prepare-progress { height: 1; padding: 0 1; }
    PrepareScreen #prepare-result { height: auto; max-height: 6; padding: 0 1; }
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self.initial = path or ""
        self.stage = "path"  # path → checking → report → applying → written → uploading
        self.report: Report | None = None
        self.checked_path: Path | None = None
        self.written: Written | None = None
        self.uploaded: list[FileObject] = []
        self._then_new_job = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="prepare-path-row"):
            yield Label("File:")
            yield PathInput(self.initial, id="prepare-path", compact=True)
        yield Static("", id="prepare-matches", markup=False, classes="-empty")
        yield PrepareReportView(id="prepare-report")
        yield ProgressBar(id="prepare-progress", show_eta=False)
        yield Static("", id="prepare-result", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.view.show_message(
            "Type the path of a training file (CSV, TSV, XLSX, JSON, JSONL or TXT) and press "
            "enter to check it."
        )
        self.path_input.focus()
        if self.initial:
            self.check(Path(self.initial).expanduser())

    @property
    def view(self) -> PrepareReportView:
        return self.query_one("#prepare-report", PrepareReportView)

    @property
    def path_input(self) -> PathInput:
        return self.query_one("#prepare-path", PathInput)

    def _result(self, text: str) -> None:
        self.query_one("#prepare-result", Static).update(text)

    # -- checking ----------------------------------------------------------------------------
    @on(PathInput.Completed)
    def _completed(self, event: PathInput.Completed) -> None:
        shown = [
            m.rstrip("/").rsplit("/", 1)[-1] + ("/" if m.endswith("/") else "")
            for m in event.matches[:40]
        ]
        more = f" … ({len(event.matches)})" if len(event.matches) > 40 else ""
        self._matches("  ".join(shown) + more)

    def _matches(self, text: str) -> None:
        box = self.query_one("#prepare-matches", Static)
        box.update(text)
        box.set_class(not text, "-empty")

    @on(PathInput.Submitted, "#prepare-path")
    def _submitted(self) -> None:
        self._matches("")
        if not self.path_input.value.strip():
            self.notify("Type the path of a file to check", severity="warning")
            return
        self.check(self.path_input.path)

    def check(self, path: Path) -> None:
        if self.stage in ("checking", "applying", "uploading"):
            return
        self.stage = "checking"
        self.report = None
        self.written = None
        self.uploaded = []
        self._result("")
        self.view.show_message(f"Running the checks on {path}…")
        self.refresh_bindings()
        self._check(path)

    @work(
        name="prepare-check",
        group="prepare-check",
        exclusive=True,
        thread=True,
        exit_on_error=False,
    )
    def _check(self, path: Path) -> None:
        from ftui.prepare import PrepareError, analyze

        if not path.is_file():
            why = "no such file" if not path.exists() else "not a regular file"
            self.app.call_from_thread(self._failed, path, f"{path}: {why}")
            return
        try:
            report = analyze(str(path))
        except PrepareError as exc:
            self.app.call_from_thread(self._failed, path, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a check that breaks is reported, not raised
            self.app.call_from_thread(
                self._failed, path, f"the checks failed: {type(exc).__name__}: {exc}"
            )
            return
        self.app.call_from_thread(self._checked, path, report)

    def _failed(self, path: Path, error: Any) -> None:
        self.stage = "path"
        self.checked_path = None
        self.view.show_error(error)
        self._result("✖ Fix the file (or pick another) and press enter to check again.")
        self.path_input.focus()
        self.refresh_bindings()

    def _checked(self, path: Path, report: Report) -> None:
        self.stage = "report"
        self.checked_path = path
        self.report = report
        self.view.show_report(report)
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
        self.refresh_bindings()
        self._upload(self._paths())

    @work(name="prepare-upload", group="prepare-upload", exclusive=True, exit_on_error=False)
    async def _upload(self, paths: list[Path]) -> None:
        from ftui.client import APIError

        app: Any = self.app
        bar = self.query_one(ProgressBar)
        status = self.query_one("#prepare-result", Static)
        bar.display = True
        uploaded: list[FileObject] = []
        try:
            await upload_paths(app, paths, "fine-tune", bar, status, uploaded)
        except (APIError, OSError) as exc:
            app.report_error(exc, "Uploading")
            self.stage = "written" if self.written is not None else "report"
            self._result(f"✖ Upload failed: {exc}")
            self.refresh_bindings()
            return
        finally:
            bar.display = False
        self.uploaded = uploaded
        self.stage = "written" if self.written is not None else "report"
        names = ", ".join(f"{f.id} ({f.filename})" for f in uploaded)
        self._result(f"✔ Uploaded {names}")
        self.notify(f"Uploaded {names}", title="Upload", markup=False)
        self.refresh_bindings()
        if self._then_new_job:
            self._open_new_job()

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
        self.app.open_new_job(train.id)  # type: ignore[attr-defined]
