"""Telling the person at the terminal that a job changed status: the words, the bell, OSC 9.

The bell and the OSC 9 desktop notification are escape sequences written to the terminal, so
they reach the terminal the person sits at through SSH. Inside tmux, OSC 9 is wrapped in tmux's
passthrough sequence (tmux ≥ 3.3 needs ``allow-passthrough on``). No Textual here: the app
writes the sequences through its driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftui.types import Job

BELL = "\a"
MAX_DESKTOP_TEXT = 200


@dataclass(frozen=True)
class StatusNotice:
    """What to tell about a status change."""

    text: str  # as the server sent it: show it through ftui.textsafe
    severity: str  # Textual's notify severities: information, warning, error


def status_notice(job: Job, old_status: str) -> StatusNotice:
    """``ftjob-…: running → succeeded (ft:…)``, with the failure's reason when it failed."""
    text = f"{job.id}: {old_status} → {job.status}"
    if job.state == "succeeded" and job.fine_tuned_model:
        text += f" ({job.fine_tuned_model})"
    elif job.state == "failed" and job.error and job.error.message:
        text += f": {job.error.message}"
    severity = {"failed": "error", "cancelled": "warning"}.get(job.state, "information")
    return StatusNotice(text, severity)


def desktop_notification(text: str) -> str:
    """An OSC 9 sequence carrying ``text`` (printable characters only, no ``;``)."""
    clean = "".join(c for c in text if c.isprintable())[:MAX_DESKTOP_TEXT].replace(";", ",")
    return f"\x1b]9;{clean}\x07"


def tmux_passthrough(sequence: str) -> str:
    """``sequence`` wrapped so that tmux hands it to the outer terminal (its ESCs doubled)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
