"""What a job's events say, in each API dialect: one table instead of branches in the runner.

The legacy service (``/v1/fine-tunes``) and the current one (``/v1/fine_tuning/jobs``) word the
same moment differently, and each announces some moments the other does not (the legacy one
numbers the queue and counts epochs; the current one reports metrics and checkpoints). A ``None``
entry means the dialect stays silent. Templates are ``str.format`` strings over the fields the
runner passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftui.dialects import Dialect


@dataclass(frozen=True)
class Wording:
    template: str
    level: str = "info"


def _both(template: str, level: str = "info") -> dict[Dialect, Wording | None]:
    return {"legacy": Wording(template, level), "current": Wording(template, level)}


MESSAGES: dict[str, dict[Dialect, Wording | None]] = {
    "validated": _both("Files validated, moving job to queued state"),
    "enqueued": {"legacy": Wording("Fine-tune enqueued. Queue number: {number}"), "current": None},
    "in_queue": {
        "legacy": Wording("Fine-tune is in the queue. Queue number: {number}"),
        "current": None,
    },
    "started": {
        "legacy": Wording("Fine-tune started"),
        "current": Wording("Fine-tuning job started"),
    },
    "epoch": {"legacy": Wording("Completed epoch {epoch}/{n_epochs}"), "current": None},
    "metrics": {
        "legacy": None,  # the legacy service published metrics only in the results file
        "current": Wording("Step {step}/{total}: training loss={loss:.2f}"),
    },
    "metrics_with_validation": {
        "legacy": None,
        "current": Wording(
            "Step {step}/{total}: training loss={loss:.2f}, validation loss={validation_loss:.2f}"
        ),
    },
    "checkpoint": {"legacy": None, "current": Wording("Checkpoint created at step {step}")},
    "paused": {
        "legacy": Wording("Fine-tune paused{where}"),
        "current": Wording("Fine-tuning job paused{where}"),
    },
    # Paused before its process started: no step to name, same words in both dialects.
    "paused_waiting": _both("Fine-tuning job paused"),
    "resumed": _both("Fine-tuning job resumed{where}"),
    "model_created": {
        "legacy": Wording("Uploaded model: {name}"),
        "current": Wording("New fine-tuned model created: {name}"),
    },
    "results_uploaded": {"legacy": Wording("Uploaded result file: {file_id}"), "current": None},
    "succeeded": {
        "legacy": Wording("Fine-tune succeeded"),
        "current": Wording("The job has successfully completed"),
    },
    "failed": {
        "legacy": Wording("Fine-tune failed: {reason}", "error"),
        "current": Wording("Fine-tuning job failed: {reason}", "error"),
    },
    "cancelled": {
        "legacy": Wording("Fine-tune cancelled"),
        "current": Wording("Fine tuning process stopping due to job cancellation", "warn"),
    },
}


def wording(kind: str, dialect: Dialect, **fields: object) -> tuple[str, str] | None:
    """(message, level) for this moment in this dialect, or None when the dialect is silent."""
    entry = MESSAGES[kind][dialect]
    if entry is None:
        return None
    return entry.template.format(**fields), entry.level
