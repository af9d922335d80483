"""How a job's progress log becomes its state: metrics events, epochs, checkpoints, results rows.

The runner applies each complete line of ``progress.jsonl`` in one transaction together with the
offset it has reached, so after a crash of the server the log is applied exactly once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftui.server import naming, progresslog
from ftui.server.store import CheckpointRecord, JobRecord, ModelRecord, Store, new_id, now

KEEP_CHECKPOINTS = 3
HYPERPARAM_KEYS = ("n_epochs", "batch_size", "learning_rate_multiplier", "prompt_loss_weight")


@dataclass
class RunningJob:
    job_id: str
    process: asyncio.subprocess.Process
    progress_path: Path
    started_at: float = field(default_factory=time.time)
    first_step: int | None = None
    total_steps: int | None = None
    failure: str | None = None
    failure_code: str = "training_failed"
    model_path: str | None = None
    paused_step: int | None = None
    cancelled: bool = False
    pausing: bool = False
    started: bool = False  # the child has installed its pause handler (it said "started")
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ProgressApplier:
    """The runner's half that reads progress; the runner provides the store and the events."""

    store: Store

    def emit(self, job: JobRecord, message: str, **kwargs: Any) -> None:
        raise NotImplementedError

    def _save(self, job: JobRecord) -> None:
        raise NotImplementedError

    def _apply_progress(self, job_id: str, running: RunningJob | None) -> None:
        """Apply the complete lines the child appended since the job's stored offset."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        path = self.store.job_dir(job_id) / progresslog.FILE_NAME
        for offset, message in progresslog.read_complete(path, job.progress_offset):
            with self.store.transaction():
                job = self.store.get_job(job_id)
                assert job is not None
                if message is not None and not job.terminal:
                    self._handle(job, running, message)
                job.progress_offset = offset
                self._save(job)

    def _handle(self, job: JobRecord, running: RunningJob | None, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "hyperparams":
            if running:
                running.total_steps = msg.get("total_steps")
            job.hyperparams = {k: msg[k] for k in HYPERPARAM_KEYS}
        elif kind == "started" and running:
            running.started = True
        elif kind == "step":
            self._on_step(job, running, msg)
        elif kind == "epoch" and msg["epoch"] > job.max_epoch:
            job.max_epoch = msg["epoch"]
            if job.dialect == "legacy":
                self.emit(job, f"Completed epoch {msg['epoch']}/{msg['n_epochs']}")
        elif kind == "checkpoint":
            self._on_checkpoint(job, msg)
        elif kind == "paused" and running:
            running.paused_step = msg.get("step")
        elif kind == "model_saved" and running:
            running.model_path = msg["path"]
        elif kind == "failed" and running:
            running.failure = msg.get("message") or "Training failed."
            running.failure_code = msg.get("code") or running.failure_code

    def _on_step(self, job: JobRecord, running: RunningJob | None, msg: dict[str, Any]) -> None:
        step = msg["step"]
        total = msg.get("total_steps") or (running.total_steps if running else None)
        job.trained_tokens = msg.get("elapsed_tokens")
        if running and total:
            if running.first_step is None:
                running.first_step, running.started_at = step, time.time()
            elif step > running.first_step:
                per_step = (time.time() - running.started_at) / (step - running.first_step)
                job.estimated_finish = int(time.time() + per_step * (total - step))
        if step <= job.max_step:
            return  # redone after a resume: announced already
        job.max_step = step
        if job.dialect == "current":
            data = {
                "step": step,
                "train_loss": msg.get("training_loss"),
                "train_mean_token_accuracy": msg.get("training_token_accuracy"),
                "total_steps": total,
            }
            message = f"Step {step}/{total}: training loss={msg.get('training_loss', 0):.2f}"
            if msg.get("validation_loss") is not None:
                data["valid_loss"] = msg["validation_loss"]
                data["valid_mean_token_accuracy"] = msg.get("validation_token_accuracy")
                message += f", validation loss={msg['validation_loss']:.2f}"
            self.emit(job, message, type="metrics", data=data)

    def _model_name(self, job: JobRecord, when: int) -> str:
        if job.dialect == "legacy":
            return naming.legacy_name(job.model, job.organization_id, job.suffix, when)
        assert job.model_tag
        return naming.current_name(job.model, job.organization_id, job.suffix, job.model_tag)

    def _on_checkpoint(self, job: JobRecord, msg: dict[str, Any]) -> None:
        step = msg["step"]
        if any(c.step == step for c in self.store.checkpoints(job.id)):
            return  # rewritten after a resume: the same weights at the same place
        if job.dialect == "current":
            model_id = naming.checkpoint_name(self._model_name(job, now()), step)
        else:
            model_id = naming.checkpoint_name(job.id, step)
        record = CheckpointRecord(
            new_id("ftckpt_"), job.id, now(), step, model_id, msg["path"], msg.get("metrics") or {}
        )
        self.store.add_checkpoint(record)
        self.store.add_model(
            ModelRecord(
                model_id,
                record.created_at,
                job.organization_id,
                job.id,
                naming.base_stem(job.model),
                msg["path"],
                kind="checkpoint",
            )
        )
        if job.dialect == "current":  # the legacy service had no checkpoints to announce
            self.emit(job, f"Checkpoint created at step {step}", data={"step": step})
        for old in self.store.checkpoints(job.id)[:-KEEP_CHECKPOINTS]:
            self.store.delete_checkpoint(old)

    def result_rows(self, job_id: str) -> list[dict[str, Any]]:
        """One row per step from the progress log; a step redone after a resume counts once."""
        rows: dict[int, dict[str, Any]] = {}
        path = self.store.job_dir(job_id) / progresslog.FILE_NAME
        for _, message in progresslog.read_complete(path, 0):
            if message is not None and message.get("type") == "step":
                rows[message["step"]] = message
        return [rows[step] for step in sorted(rows)]
