"""Check a local file before it is used: a path input that completes, the prepare checks in a
thread, and their report with the optional fixes as toggles.

Shared by the prepare screen and the files screen's upload dialog. The checks
(``ftui.prepare.analyze``) read the whole file (a large CSV through pandas), so they run in a
thread worker; it posts :class:`~ftui.messages.PrepareChecked` or
:class:`~ftui.messages.PrepareFailed`, which this widget shows and which bubble on to the screen
(what to do next is the screen's business). Enter in the path input asks for a check: the
screen decides whether now is the time (``PathInput.Submitted`` bubbles to it once the path is
not empty).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static

from ftui.messages import PrepareChecked, PrepareFailed
from ftui.widgets.base import ReportsWorkerErrors
from ftui.widgets.file_path_input import PathInput
from ftui.widgets.prepare_report import PrepareReportView

MAX_SHOWN_MATCHES = 40


class PrepareCheck(ReportsWorkerErrors, Vertical):
    """Path input, completions and the prepare report of the file checked last."""

    DEFAULT_CSS = """
    PrepareCheck { height: 1fr; }
    PrepareCheck > .pc-row { height: 1; }
    PrepareCheck > .pc-row > Label { width: auto; padding: 0 1; text-style: bold; }
    PrepareCheck > .pc-matches { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    PrepareCheck > .pc-matches.-empty { display: none; }
    PrepareCheck > PrepareReportView { height: 1fr; }
    """

    WORKER_WHAT: ClassVar[dict[str, str]] = {"prepare-check": "Checking the file"}

    def __init__(
        self, label: str, value: str = "", *, empty_hint: str, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.label = label
        self.empty_hint = empty_hint
        # Built here, not in compose: the screens' check_action reads them at any time.
        self.path_input = PathInput(value, compact=True)
        self.view = PrepareReportView()
        self._matches = Static("", markup=False, classes="pc-matches -empty")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="pc-row"):
            yield Label(self.label)
            yield self.path_input
        yield self._matches
        yield self.view

    @property
    def path(self) -> Path:
        return self.path_input.path

    def check(self, path: Path, note: str) -> None:
        """Run the checks on ``path`` (``note`` shows meanwhile); a check under way is dropped."""
        self.show_matches("")
        self.view.show_message(note)
        self._run(path)

    @work(
        name="prepare-check",
        group="prepare-check",
        exclusive=True,
        thread=True,
        exit_on_error=False,
    )
    def _run(self, path: Path) -> None:
        from ftui.prepare import PrepareError, analyze

        if not path.is_file():
            why = "no such file" if not path.exists() else "not a regular file"
            self.post_message(PrepareFailed(path, f"{path}: {why}", exists=False))
            return
        try:
            report = analyze(str(path))
        except PrepareError as exc:
            self.post_message(PrepareFailed(path, exc, exists=True))
        except Exception as exc:  # noqa: BLE001 - a check that breaks is reported, not raised
            error = f"the checks failed: {type(exc).__name__}: {exc}"
            self.post_message(PrepareFailed(path, error, exists=True))
        else:
            self.post_message(PrepareChecked(path, report))

    def on_prepare_checked(self, event: PrepareChecked) -> None:
        self.view.show_report(event.report)

    def on_prepare_failed(self, event: PrepareFailed) -> None:
        self.view.show_error(event.error)

    # -- the path ------------------------------------------------------------------------------
    @on(PathInput.Completed)
    def _completed(self, event: PathInput.Completed) -> None:
        event.stop()
        shown = [
            m.rstrip("/").rsplit("/", 1)[-1] + ("/" if m.endswith("/") else "")
            for m in event.matches[:MAX_SHOWN_MATCHES]
        ]
        n = len(event.matches)
        more = f" … ({n})" if n > MAX_SHOWN_MATCHES else ""
        self.show_matches("  ".join(shown) + more)

    def show_matches(self, text: str) -> None:
        self._matches.update(text)
        self._matches.set_class(not text, "-empty")

    @on(PathInput.Submitted)
    def _submitted(self, event: PathInput.Submitted) -> None:
        self.show_matches("")
        if not self.path_input.value.strip():
            event.stop()
            self.notify(self.empty_hint, severity="warning")
