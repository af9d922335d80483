"""The upload dialog of the files screen: pick a local file, check it, fix or not, upload.

A path input that completes paths, then the prepare checks run in a thread and their report is
shown with the fixes one key away (``f`` applies the accepted fixes and uploads the prepared
file(s), ``u`` uploads the file as it is), then a progress bar while the file streams up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static
from textual.worker import Worker

from ftui.messages import PrepareChecked, PrepareFailed
from ftui.widgets.base import FtuiModal
from ftui.widgets.file_path_input import PathInput
from ftui.widgets.prepare_check import PrepareCheck
from ftui.widgets.prepare_report import PrepareReportView
from ftui.widgets.upload import UploadProgress

if TYPE_CHECKING:
    from ftui.prepare import Report
    from ftui.types import FileObject

KEYS = {
    "path": "enter: check the file · tab: complete the path · esc: cancel",
    "checking": "checking… · esc: cancel",
    "report": "f: apply the accepted fixes and upload · u: upload as is · "
    "space: toggle fix · c: change path · esc: cancel",
    "uploading": "uploading… · esc: cancel",
    "done": "",
}


class UploadScreen(FtuiModal):
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

    WORKER_WHAT: ClassVar[dict[str, str]] = {"upload": "Uploading"}

    def __init__(self, path: str | None = None, purpose: str = "fine-tune") -> None:
        super().__init__()
        self.purpose = purpose
        self.stage = "path"  # path → checking → report → uploading → done
        self.report: Report | None = None
        self.checked_path: Path | None = None
        self.uploaded: list[FileObject] = []
        self.checker = PrepareCheck(
            "Upload:", path or "", empty_hint="Type the path of a file to upload", id="upload-check"
        )

    def compose(self) -> ComposeResult:
        with Vertical():
            yield self.checker
            yield UploadProgress(id="upload-progress")
            yield Static("", id="upload-status", markup=False)
            yield Static("", id="upload-keys", markup=False)

    def on_mount(self) -> None:
        self.checker.view.show_message(
            "Type the path of a local file and press enter: the prepare checks run first."
        )
        self.checker.path_input.focus()
        self._keys()

    def _set_stage(self, stage: str) -> None:
        self.stage = stage
        self._keys()

    def _keys(self) -> None:
        self.query_one("#upload-keys", Static).update(KEYS[self.stage])
        self.refresh_bindings()

    def _status(self, text: str) -> None:
        self.query_one("#upload-status", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing_path = self.checker.path_input.has_focus  # letters go into the path
        if action in ("fix_upload", "upload_as_is"):
            if self.stage != "report" or typing_path:
                return False
            if action == "fix_upload" and (self.report is None or self.report.errors):
                return None
        if action == "change_path":
            return self.stage == "report" and not typing_path
        return True

    # -- checking ------------------------------------------------------------------------------
    @on(PathInput.Submitted)
    def _path_submitted(self) -> None:
        if self.stage in ("checking", "uploading"):
            return
        path = self.checker.path
        self._set_stage("checking")
        self.checker.check(path, f"Running the prepare checks on {path}…")

    def on_prepare_failed(self, event: PrepareFailed) -> None:
        self.report = None
        self.checked_path = event.path if event.exists else None
        if event.exists:
            self._set_stage("report")
            self.checker.view.focus()
            self._status(
                "The checks could not read this file; u uploads it anyway (the server will "
                "check it too)."
            )
        else:
            self._set_stage("path")
            self.checker.path_input.focus()

    def on_prepare_checked(self, event: PrepareChecked) -> None:
        self.checked_path = event.path
        self.report = event.report
        self._set_stage("report")
        self.checker.view.focus()
        self._status_for_report()

    def _status_for_report(self) -> None:
        report = self.report
        if report is None:
            return
        if report.errors:
            text = "✖ the file has errors the fixes cannot repair; u uploads it anyway."
        elif not report.necessary and not report.optional:
            text = "✔ no fixes needed: f or u uploads the file."
        else:
            text = f"{self.checker.view.fixes_text()} by f; u uploads the file unchanged."
        self._status(text)

    @on(PrepareReportView.Changed)
    def _fixes_changed(self) -> None:
        if self.stage == "report":
            self._status_for_report()

    def action_change_path(self) -> None:
        self._set_stage("path")
        self.checker.path_input.focus()

    # -- uploading -----------------------------------------------------------------------------
    def action_fix_upload(self) -> None:
        if self.stage != "report" or self.report is None or self.report.errors:
            return
        self._set_stage("uploading")
        self._upload(fix=True, accepted=set(self.checker.view.accepted))

    def action_upload_as_is(self) -> None:
        if self.stage != "report" or self.checked_path is None:
            return
        self._set_stage("uploading")
        self._upload(fix=False, accepted=set())

    @work(name="upload", group="upload", exclusive=True, exit_on_error=False)
    async def _upload(self, fix: bool, accepted: set[str]) -> None:
        from ftui.prepare import PrepareError, apply

        assert self.checked_path is not None
        paths = [self.checked_path]
        if fix and self.report is not None:
            self._status("Applying the fixes…")
            try:
                written = await asyncio.to_thread(apply, self.report, sorted(accepted))
            except (PrepareError, OSError, ValueError) as exc:
                self._status(f"✖ could not write the prepared file: {exc}")
                self._set_stage("report")
                return
            if written:
                paths = [p for p in (written.train, written.valid) if p] or list(written)
        self._status("")
        client = await self.ftui.api()
        await self.query_one(UploadProgress).upload(client, paths, self.purpose, self.uploaded)
        self.ftui.report_ok()
        self._set_stage("done")
        self.dismiss(list(self.uploaded))

    def worker_failed(self, worker: Worker, error: BaseException) -> None:
        self._status(f"✖ upload failed: {error}")
        self._set_stage("report" if self.checked_path is not None else "path")

    def action_cancel(self) -> None:
        # this dialog's check and upload only: self.workers is the whole app's manager
        self.workers.cancel_node(self.checker)
        self.workers.cancel_node(self)
        self.dismiss(list(self.uploaded) or None)
