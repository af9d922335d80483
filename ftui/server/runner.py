"""The job queue: each job trains in its own child process (`python -m ftui.server.train`).

The child reports through `JOB_DIR/progress.jsonl`; the runner applies each line to the job in
one transaction together with the file offset it has reached, so after a crash of the server the
log is applied exactly once. Lines become job state, events in the job's dialect, checkpoints,
a registered model and a results file. Keeping training out of the server process keeps the API
responsive and returns all of a job's memory when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftui.server import naming, resultsfile
from ftui.server.signals import JobSignals
from ftui.server.store import (
    CheckpointRecord,
    FileRecord,
    JobRecord,
    ModelRecord,
    Store,
    new_id,
    now,
)

log = logging.getLogger("ftui.server.runner")

POLL_SECONDS = 0.2
CANCEL_GRACE_SECONDS = 5.0
PAUSE_TIMEOUT_SECONDS = 600.0
CURRENT_AUTO_EPOCHS = 3
KEEP_CHECKPOINTS = 3
MAX_ATTEMPTS = 3  # starts of one job, counting resumes after crashes
TRAINER_STATE = "trainer_state.pt"
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
    model_path: str | None = None
    paused_step: int | None = None
    cancelled: bool = False
    pausing: bool = False
    started: bool = False  # the child has installed its pause handler (it said "started")
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Runner:
    def __init__(
        self,
        store: Store,
        signals: JobSignals,
        *,
        max_concurrent: int = 1,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.store = store
        self.signals = signals
        self.max_concurrent = max_concurrent
        self.device = device
        self.threads = threads
        self._queue: list[str] = []
        self._running: dict[str, RunningJob] = {}
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task | None = None

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self._recover()
        self._scheduler = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        if self._scheduler:
            self._scheduler.cancel()
        for running in list(self._running.values()):
            running.cancelled = True  # not a cancel of the job: it resumes at the next start
            await self._terminate(running.process)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _recover(self) -> None:
        """Jobs that were training when the server stopped resume from their last checkpoint."""
        for job in self.store.jobs_with_status("running"):
            await self._kill_orphan(job)
            self._apply_progress(job.id, None)  # what the old process wrote after our last read
            job = self.store.get_job(job.id)
            assert job is not None
            self._retry_or_fail(job, "The server stopped while this job was training")
        for job in self.store.jobs_with_status("validating_files", "queued"):
            self.submit(job.id)

    async def _kill_orphan(self, job: JobRecord) -> None:
        """The training process lives in its own session, so it can outlive a killed server."""
        if not job.pid:
            return
        try:
            cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.store.job_dir(job.id)).encode() not in cmdline:
            return  # the pid was reused by something else
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        for _ in range(100):
            if not Path(f"/proc/{job.pid}").exists():
                break
            await asyncio.sleep(0.05)

    def _retry_or_fail(self, job: JobRecord, what_happened: str) -> None:
        checkpoint = self._resume_point(job)
        if job.attempts >= MAX_ATTEMPTS:
            self._finish_failed(
                job,
                f"{what_happened}, and it has been started {job.attempts} times; giving up.",
                code="too_many_restarts",
            )
            return
        if checkpoint:
            how = f"it resumes from the checkpoint at step {checkpoint.step}"
        else:
            how = "there is no checkpoint yet, so it starts again from the beginning"
        self.emit(job, f"{what_happened}; {how}.", level="warn")
        job.status = "queued"
        self._save(job)
        self._queue.insert(0, job.id)
        self._wake.set()

    # --- events -------------------------------------------------------------------------
    def emit(self, job: JobRecord, message: str, **kwargs: Any) -> None:
        self.store.add_event(job.id, message, **kwargs)
        self.signals.notify(job.id)

    def _save(self, job: JobRecord) -> None:
        self.store.save_job(job)
        self.signals.notify(job.id)

    # --- queue --------------------------------------------------------------------------
    def submit(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.terminal:
            return
        if job.status == "validating_files":
            self.emit(job, "Files validated, moving job to queued state")
            job.status = "queued"
            self._save(job)
        self._queue.append(job_id)
        if job.dialect == "legacy":
            self.emit(job, f"Fine-tune enqueued. Queue number: {self._queue_number(job_id)}")
        self._wake.set()

    def _queue_number(self, job_id: str) -> int:
        return max(0, self._queue.index(job_id) - (self.max_concurrent - len(self._running)))

    def _announce_queue(self) -> None:
        for job_id in self._queue:
            job = self.store.get_job(job_id)
            if job and job.dialect == "legacy":
                number = self._queue_number(job_id)
                self.emit(job, f"Fine-tune is in the queue. Queue number: {number}")

    async def _schedule(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = False
            while self._queue and len(self._running) < self.max_concurrent:
                job = self.store.get_job(self._queue.pop(0))
                if job is None or job.status != "queued":
                    continue
                await self._launch(job)
                started = True
            if started and self._queue:
                self._announce_queue()

    # --- running a job ------------------------------------------------------------------
    def _resume_point(self, job: JobRecord) -> CheckpointRecord | None:
        for checkpoint in reversed(self.store.checkpoints(job.id)):
            if (Path(checkpoint.path) / TRAINER_STATE).exists():
                return checkpoint
        return None

    def _spec(self, job: JobRecord) -> dict[str, Any]:
        job_dir = self.store.job_dir(job.id)
        parent = self.store.get_model(job.model)
        hyper = {k: job.params.get(k) for k in HYPERPARAM_KEYS}
        if job.dialect == "current" and hyper["n_epochs"] is None:
            hyper["n_epochs"] = CURRENT_AUTO_EPOCHS
        classification = None
        if job.params.get("compute_classification_metrics"):
            classification = {
                "n_classes": job.params.get("classification_n_classes"),
                "positive_class": job.params.get("classification_positive_class"),
                "betas": job.params.get("classification_betas"),
            }
        resume = self._resume_point(job)
        return {
            "job_id": job.id,
            "dialect": job.dialect,
            "base_model": job.model,
            "base_model_path": parent.path if parent else None,
            "data_dir": str(self.store.data_dir),
            "training_file": self._file_path(job.training_file),
            "validation_file": self._file_path(job.validation_file),
            "hyperparams": hyper,
            "lora": job.params.get("lora"),
            "classification": classification,
            "checkpoints": {"dir": str(job_dir / "checkpoints")},
            "resume_from": resume.path if resume else None,
            "seed": job.seed,
            "output_dir": str(job_dir / "model"),
            "device": self.device,
            "threads": self.threads,
            "concurrent_jobs": self.max_concurrent,
        }

    def _file_path(self, file_id: str | None) -> str | None:
        if file_id is None:
            return None
        record = self.store.get_file(file_id)
        if record is None:
            raise FileNotFoundError(f"The file {file_id} was deleted before the job started.")
        return str(self.store.blob_path(record.sha256))

    async def _launch(self, job: JobRecord) -> None:
        job_dir = self.store.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            spec = self._spec(job)
        except FileNotFoundError as exc:
            self._finish_failed(job, str(exc), code="invalid_training_file")
            return
        (job_dir / "spec.json").write_text(json.dumps(spec, indent=2))
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false")
        with open(job_dir / "train.log", "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ftui.server.train",
                str(job_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
                start_new_session=True,
            )
        running = RunningJob(job.id, process, job_dir / "progress.jsonl")
        self._running[job.id] = running
        first_start = job.pid is None
        job.pid = process.pid
        job.attempts += 1
        job.model_tag = job.model_tag or naming.new_tag()
        job.status = "running"
        if first_start:
            if job.dialect == "legacy":
                self.emit(job, "Fine-tune started")
            else:
                self.emit(job, "Fine-tuning job started", data=None)
        self._save(job)
        task = asyncio.create_task(self._watch(running))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, running: RunningJob) -> None:
        try:
            while True:
                try:
                    await asyncio.wait_for(running.process.wait(), POLL_SECONDS)
                except TimeoutError:
                    self._apply_progress(running.job_id, running)
                    continue
                self._apply_progress(running.job_id, running)
                break
            await self._conclude(running)
        except Exception:  # a bug here must fail the job, not leave it running forever
            log.exception("watching job %s failed", running.job_id)
            job = self.store.get_job(running.job_id)
            if job and not job.terminal:
                self._finish_failed(job, "Internal error while finishing the job.", code="internal")
        finally:
            self._running.pop(running.job_id, None)
            running.done.set()
            self._wake.set()

    def _apply_progress(self, job_id: str, running: RunningJob | None) -> None:
        """Apply the complete lines the child appended since the job's stored offset."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        try:
            with open(self.store.job_dir(job_id) / "progress.jsonl", "rb") as fh:
                fh.seek(job.progress_offset)
                data = fh.read()
        except FileNotFoundError:
            return
        offset = job.progress_offset
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # the child is mid-write; the rest of the line comes later
            offset += len(line)
            with self.store.transaction():
                job = self.store.get_job(job_id)
                assert job is not None
                if line.strip() and not job.terminal:
                    self._handle(job, running, json.loads(line))
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

    async def _conclude(self, running: RunningJob) -> None:
        job = self.store.get_job(running.job_id)
        if job is None or job.terminal or running.cancelled:
            return
        code = running.process.returncode
        if code == 0 and running.model_path and Path(running.model_path).is_dir():
            self._finish_succeeded(job, running)  # it finished before it saw the pause
            return
        if running.pausing:
            where = f" at step {running.paused_step}" if running.paused_step else ""
            if job.dialect == "legacy":
                self.emit(job, f"Fine-tune paused{where}")
            else:
                self.emit(job, f"Fine-tuning job paused{where}")
            job.status = "paused"
            job.estimated_finish = None
            self._save(job)
            return
        if running.failure is None and code is not None and code < 0:
            # Killed from outside (the OOM killer, kill -9): like a crash, resume if we can.
            self._retry_or_fail(job, f"The training process was killed by signal {-code}")
            return
        reason = running.failure or self._crash_reason(job.id, code)
        self._finish_failed(job, reason, code="training_failed")

    def _crash_reason(self, job_id: str, code: int | None) -> str:
        tail = ""
        with contextlib.suppress(OSError):
            lines = (self.store.job_dir(job_id) / "train.log").read_text(errors="replace")
            tail = next((ln for ln in reversed(lines.splitlines()) if ln.strip()), "")
        return f"The training process exited with code {code}" + (f": {tail}" if tail else ".")

    def _finish_succeeded(self, job: JobRecord, running: RunningJob) -> None:
        when = now()
        name = self._model_name(job, when)
        while self.store.get_model(name) is not None:  # same suffix, same second
            when += 1
            name = self._model_name(job, when)
        destination = self.store.models_dir / self.store.model_slug(name)
        # A rename of a complete directory: the model is never listed half-written.
        assert running.model_path is not None
        os.replace(running.model_path, destination)
        parent = self.store.get_model(job.model)
        root = parent.root if parent else job.model
        self.store.add_model(
            ModelRecord(name, when, job.organization_id, job.id, root, str(destination))
        )
        job.fine_tuned_model = name
        if job.dialect == "legacy":
            self.emit(job, f"Uploaded model: {name}", created_at=when)
        else:
            self.emit(job, f"New fine-tuned model created: {name}", created_at=when)
        results = self._store_results(job)
        job.result_files = [results.id]
        if job.dialect == "legacy":
            self.emit(job, f"Uploaded result file: {results.id}")
            self.emit(job, "Fine-tune succeeded")
        else:
            self.emit(job, "The job has successfully completed")
        job.status = "succeeded"
        job.finished_at = now()
        job.estimated_finish = None
        self._save(job)

    def result_rows(self, job_id: str) -> list[dict[str, Any]]:
        """One row per step from the progress log; a step redone after a resume counts once."""
        rows: dict[int, dict[str, Any]] = {}
        path = self.store.job_dir(job_id) / "progress.jsonl"
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
            for line in fh:
                if line.endswith(b"\n") and line.strip():
                    msg = json.loads(line)
                    if msg.get("type") == "step":
                        rows[msg["step"]] = msg
        return [rows[step] for step in sorted(rows)]

    def _store_results(self, job: JobRecord) -> FileRecord:
        rows = self.result_rows(job.id)
        content = resultsfile.render(rows, job.dialect, job.validation_file is not None)
        sha, size, _ = self.store.write_blob_bytes(content)
        record = FileRecord(
            id=new_id("file-"),
            bytes=size,
            created_at=now(),
            filename=resultsfile.filename(job.dialect),
            purpose="fine-tune-results",
            status="processed",
            status_details=None,
            sha256=sha,
        )
        return self.store.add_file(record)

    def _discard_outputs(self, job_id: str) -> None:
        job_dir = self.store.job_dir(job_id)
        for name in ("model", "model.partial"):
            shutil.rmtree(job_dir / name, ignore_errors=True)

    def _finish_failed(self, job: JobRecord, reason: str, *, code: str) -> None:
        self._discard_outputs(job.id)
        if job.dialect == "legacy":
            self.emit(job, f"Fine-tune failed: {reason}", level="error")
        else:
            self.emit(job, f"Fine-tuning job failed: {reason}", level="error")
        job.status = "failed"
        job.error = {"code": code, "message": reason, "param": None}
        job.finished_at = now()
        job.estimated_finish = None
        self._save(job)

    # --- cancel, pause, resume ------------------------------------------------------------
    async def cancel(self, job: JobRecord) -> JobRecord:
        if job.id in self._queue:
            self._queue.remove(job.id)
        running = self._running.get(job.id)
        if running is not None:
            running.cancelled = True
            await self._terminate(running.process)
            await running.done.wait()
        job = self.store.get_job(job.id) or job
        self._discard_outputs(job.id)
        if job.dialect == "legacy":
            self.emit(job, "Fine-tune cancelled")
        else:
            self.emit(job, "Fine tuning process stopping due to job cancellation", level="warn")
        job.status = "cancelled"
        job.finished_at = now()
        job.estimated_finish = None
        self._save(job)
        self._wake.set()
        return job

    async def pause(self, job: JobRecord) -> JobRecord:
        """A running job checkpoints where it is and stops, freeing the device."""
        running = self._running.get(job.id)
        if running is None:
            if job.id in self._queue:
                self._queue.remove(job.id)
            self.emit(job, "Fine-tuning job paused")
            job.status = "paused"
            self._save(job)
            return job
        running.pausing = True
        if running.started:
            with contextlib.suppress(ProcessLookupError):
                running.process.send_signal(signal.SIGUSR1)
        else:
            # Still loading: nothing trained in this run yet, so stopping loses nothing, and
            # SIGUSR1 before the child's handler exists would kill it anyway.
            await self._terminate(running.process)
        try:
            await asyncio.wait_for(running.done.wait(), PAUSE_TIMEOUT_SECONDS)
        except TimeoutError:
            await self._terminate(running.process)
            await running.done.wait()
        return self.store.get_job(job.id) or job

    def resume(self, job: JobRecord) -> JobRecord:
        checkpoint = self._resume_point(job)
        where = f" from the checkpoint at step {checkpoint.step}" if checkpoint else ""
        self.emit(job, f"Fine-tuning job resumed{where}")
        job.status = "queued"
        self._save(job)
        self._queue.append(job.id)
        self._wake.set()
        return job

    @staticmethod
    async def _terminate(process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), CANCEL_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
