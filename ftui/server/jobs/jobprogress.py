"""How a job's progress log becomes its state: metrics events, epochs, checkpoints, results rows.

The runner applies each complete line of ``progress.jsonl`` in one transaction together with the
offset it has reached, so after a crash of the server the log is applied exactly once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ftui.server.jobs import events, naming, resultsfile
from ftui.server.jobs.store import CheckpointRecord, JobRecord, ModelRecord, Store, new_id, now
from ftui.server.training import progress, progresslog

KEEP_CHECKPOINTS = 3


@dataclass
class RunningJob:
    job_id: str
    process: asyncio.subprocess.Process
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

    def announce(
        self,
        job: JobRecord,
        kind: str,
        *,
        data: dict[str, Any] | None = None,
        event_type: str = "message",
        created_at: int | None = None,
        **fields: Any,
    ) -> None:
        """The event for this moment in the job's dialect (events.MESSAGES), if it has one."""
        said = events.wording(kind, job.dialect, **fields)
        if said is not None:
            message, level = said
            self.emit(job, message, level=level, type=event_type, data=data, created_at=created_at)

    def _apply_progress(self, job_id: str, running: RunningJob | None) -> None:
        """Apply the complete lines the child appended since the job's stored offset."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        path = self.store.job_dir(job_id) / progresslog.FILE_NAME
        for offset, row in progress.read(path, job.progress_offset):
            with self.store.transaction():
                job = self.store.get_job(job_id)
                assert job is not None
                if row is not None and not job.terminal:
                    self._handle(job, running, row)
                job.progress_offset = offset
                self._save(job)

    def _handle(self, job: JobRecord, running: RunningJob | None, row: progress.Row) -> None:
        match row:
            case progress.Hyperparams():
                if running:
                    running.total_steps = row.total_steps
                job.hyperparams = dict(row.values)  # views.py picks what each dialect shows
            case progress.Started() if running:
                running.started = True
            case progress.Step():
                self._on_step(job, running, row)
            case progress.Epoch() if row.epoch > job.max_epoch:
                job.max_epoch = row.epoch
                self.announce(job, "epoch", epoch=row.epoch, n_epochs=row.n_epochs)
            case progress.Checkpoint():
                self._on_checkpoint(job, row)
            case progress.Paused() if running:
                running.paused_step = row.step
            case progress.ModelSaved() if running:
                running.model_path = row.path
            case progress.Failed() if running:
                running.failure = row.message or "Training failed."
                running.failure_code = row.code or running.failure_code

    def _on_step(self, job: JobRecord, running: RunningJob | None, row: progress.Step) -> None:
        step = row.step
        total = row.total_steps or (running.total_steps if running else None)
        job.trained_tokens = row.elapsed_tokens
        if running and total:
            if running.first_step is None:
                running.first_step, running.started_at = step, time.time()
            elif step > running.first_step:
                per_step = (time.time() - running.started_at) / (step - running.first_step)
                job.estimated_finish = int(time.time() + per_step * (total - step))
        if step <= job.max_step:
            return  # redone after a resume: announced already
        job.max_step = step
        values = row.values()
        data = {
            "step": step,
            **resultsfile.current_metrics(values, resultsfile.EVENT_METRICS),
            "total_steps": total,
        }
        fields: dict[str, Any] = {"step": step, "total": total, "loss": row.training.loss or 0}
        kind = "metrics"
        if row.validation is not None and row.validation.loss is not None:
            data.update(resultsfile.current_metrics(values, resultsfile.EVENT_VALIDATION_METRICS))
            fields["validation_loss"] = row.validation.loss
            kind = "metrics_with_validation"
        self.announce(job, kind, data=data, event_type="metrics", **fields)

    def _model_name(self, job: JobRecord, when: int) -> str:
        if job.dialect == "legacy":
            return naming.legacy_name(job.model, job.organization_id, job.suffix, when)
        assert job.model_tag
        return naming.current_name(job.model, job.organization_id, job.suffix, job.model_tag)

    def _on_checkpoint(self, job: JobRecord, row: progress.Checkpoint) -> None:
        step = row.step
        if any(c.step == step for c in self.store.checkpoints(job.id)):
            return  # rewritten after a resume: the same weights at the same place
        if job.dialect == "current":
            model_id = naming.checkpoint_name(self._model_name(job, now()), step)
        else:
            model_id = naming.checkpoint_name(job.id, step)
        record = CheckpointRecord(
            new_id("ftckpt_"), job.id, now(), step, model_id, row.path, row.metrics or {}
        )
        self.store.add_checkpoint(record)
        self.store.add_model(
            ModelRecord(
                model_id,
                record.created_at,
                job.organization_id,
                job.id,
                naming.base_stem(job.model),
                row.path,
                kind="checkpoint",
            )
        )
        self.announce(job, "checkpoint", data={"step": step}, step=step)
        for old in self.store.checkpoints(job.id)[:-KEEP_CHECKPOINTS]:
            self.store.delete_checkpoint(old)

    def result_rows(self, job_id: str) -> list[dict[str, Any]]:
        """One row per step from the progress log; a step redone after a resume counts once."""
        rows: dict[int, dict[str, Any]] = {}
        path = self.store.job_dir(job_id) / progresslog.FILE_NAME
        for _, row in progress.read(path, 0):
            if isinstance(row, progress.Step):
                rows[row.step] = row.values()
        return [rows[step] for step in sorted(rows)]
