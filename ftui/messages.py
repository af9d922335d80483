"""What workers tell the UI: typed messages, posted from the worker, handled on the UI thread.

``post_message`` is safe from any thread, so a thread worker (the prepare checks read a whole
CSV with pandas) posts its result and returns; the handler that receives it is the only code
that touches widgets. A failed worker is not a message: it goes to the one worker-error route
(:class:`ftui.widgets.base.ReportsWorkerErrors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from ftui.prepare import Report


@dataclass
class PrepareChecked(Message):
    """The prepare checks read ``path``: here is their report."""

    path: Path
    report: Report


@dataclass
class PrepareFailed(Message):
    """The prepare checks could not read ``path``; ``error`` says why in words.

    ``exists`` is False when there is no such file (nothing to upload either), True when the
    file is there but the checks could not make sense of it (it may still be uploaded as is).
    """

    path: Path
    error: str | BaseException
    exists: bool


@dataclass
class JobProgress(Message):
    """A followed job reached ``step`` of ``total`` (None when the job does not say).

    A newer progress message of the same job replaces one still waiting in the queue: when the
    UI is busy, only the latest step of each job is drawn.
    """

    job_id: str
    step: int
    total: int | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgress) and message.job_id == self.job_id
