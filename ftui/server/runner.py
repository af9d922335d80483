"""The job queue: each job trains in its own child process (`python -m ftui.server.train`).

The child reports through `JOB_DIR/progress.jsonl`; the runner turns those lines into job state,
events in the job's dialect, a registered model and a results file. Keeping training out of the
server process keeps the API responsive and returns all of a job's memory when it ends.
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
from ftui.server.store import FileRecord, JobRecord, ModelRecord, Store, new_id, now

log = logging.getLogger("ftui.server.runner")

POLL_SECONDS = 0.2
CANCEL_GRACE_SECONDS = 5.0
CURRENT_AUTO_EPOCHS = 3


@dataclass
class RunningJob:
    job_id: str
    process: asyncio.subprocess.Process
    progress_path: Path
    offset: int = 0
    total_steps: int | None = None
    started_at: float = field(default_factory=time.time)
    rows: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None
    model_path: str | None = None
    cancelled: bool = False


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
        self._recover()
        self._scheduler = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        if self._scheduler:
            self._scheduler.cancel()
        for running in list(self._running.values()):
            await self._terminate(running.process)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _recover(self) -> None:
        """Jobs that were training when the server stopped are failed; queued ones wait again."""
        for job in self.store.jobs_with_status("running"):
            self._finish_failed(
                job,
                "The server stopped while this job was training, so it did not finish. "
                "Create the job again to retrain.",
                code="server_restarted",
            )
        for job in self.store.jobs_with_status("validating_files", "queued"):
            self.submit(job.id)

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
                job_id = self._queue.pop(0)
                job = self.store.get_job(job_id)
                if job is None or job.terminal:
                    continue
                await self._launch(job)
                started = True
            if started and self._queue:
                self._announce_queue()

    # --- running a job ------------------------------------------------------------------
    def _spec(self, job: JobRecord) -> dict[str, Any]:
        job_dir = self.store.job_dir(job.id)
        base_path = None
        model = self.store.get_model(job.model)
        if model is not None:
            base_path = model.path
        hyper = {
            k: job.params.get(k)
            for k in ("n_epochs", "batch_size", "learning_rate_multiplier", "prompt_loss_weight")
        }
        if job.dialect == "current" and hyper["n_epochs"] is None:
            hyper["n_epochs"] = CURRENT_AUTO_EPOCHS
        return {
            "job_id": job.id,
            "dialect": job.dialect,
            "base_model": job.model,
            "base_model_path": base_path,
            "data_dir": str(self.store.data_dir),
            "training_file": self._file_path(job.training_file),
            "validation_file": self._file_path(job.validation_file),
            "hyperparams": hyper,
            "seed": job.seed,
            "output_dir": str(job_dir / "model"),
            "device": self.device,
            "threads": self.threads,
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
        progress = job_dir / "progress.jsonl"
        progress.unlink(missing_ok=True)
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false")
        with open(job_dir / "train.log", "wb") as log_file:
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
        running = RunningJob(job.id, process, progress)
        self._running[job.id] = running
        job.status = "running"
        self.emit(
            job,
            "Fine-tune started" if job.dialect == "legacy" else "Fine-tuning job started",
            data=None if job.dialect == "current" else {},
        )
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
                    self._read_progress(running)
                    continue
                self._read_progress(running)
                break
            await self._conclude(running)
        except Exception:  # a bug here must fail the job, not leave it running forever
            log.exception("watching job %s failed", running.job_id)
            job = self.store.get_job(running.job_id)
            if job and not job.terminal:
                self._finish_failed(job, "Internal error while finishing the job.", code="internal")
        finally:
            self._running.pop(running.job_id, None)
            self._wake.set()

    def _read_progress(self, running: RunningJob) -> None:
        try:
            with open(running.progress_path, "rb") as fh:
                fh.seek(running.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # only whole lines; the child may be mid-write
        running.offset += end
        for line in data[:end].splitlines():
            if line.strip():
                self._handle(running, json.loads(line))

    def _handle(self, running: RunningJob, msg: dict[str, Any]) -> None:
        job = self.store.get_job(running.job_id)
        if job is None or job.terminal:
            return
        kind = msg.get("type")
        if kind == "hyperparams":
            running.total_steps = msg.get("total_steps")
            job.hyperparams = {
                k: msg[k]
                for k in (
                    "batch_size",
                    "learning_rate_multiplier",
                    "n_epochs",
                    "prompt_loss_weight",
                )
            }
            self._save(job)
        elif kind == "step":
            self._on_step(running, job, msg)
        elif kind == "epoch" and job.dialect == "legacy":
            self.emit(job, f"Completed epoch {msg['epoch']}/{msg['n_epochs']}")
        elif kind == "model_saved":
            running.model_path = msg["path"]
        elif kind == "failed":
            running.failure = msg.get("message") or "Training failed."

    def _on_step(self, running: RunningJob, job: JobRecord, msg: dict[str, Any]) -> None:
        row = {k: v for k, v in msg.items() if k not in ("type", "time", "epoch", "tokens")}
        running.rows.append(row)
        job.trained_tokens = msg.get("elapsed_tokens")
        step, total = msg["step"], msg.get("total_steps") or running.total_steps
        if total:
            per_step = (time.time() - running.started_at) / step
            job.estimated_finish = int(time.time() + per_step * (total - step))
        if job.dialect == "current":
            data = {
                "step": step,
                "train_loss": msg.get("training_loss"),
                "train_mean_token_accuracy": msg.get("training_token_accuracy"),
                "total_steps": total,
            }
            self.emit(
                job,
                f"Step {step}/{total}: training loss={msg.get('training_loss', 0):.2f}",
                type="metrics",
                data=data,
            )
        self._save(job)

    async def _conclude(self, running: RunningJob) -> None:
        job = self.store.get_job(running.job_id)
        if job is None or job.terminal or running.cancelled:
            return
        code = running.process.returncode
        if code == 0 and running.model_path and Path(running.model_path).is_dir():
            self._finish_succeeded(job, running)
            return
        reason = running.failure or self._crash_reason(job.id, code)
        self._finish_failed(job, reason, code="training_failed")

    def _crash_reason(self, job_id: str, code: int | None) -> str:
        tail = ""
        with contextlib.suppress(OSError):
            lines = (self.store.job_dir(job_id) / "train.log").read_text(errors="replace")
            tail = next((ln for ln in reversed(lines.splitlines()) if ln.strip()), "")
        how = f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
        return f"The training process {how}" + (f": {tail}" if tail else ".")

    def _finish_succeeded(self, job: JobRecord, running: RunningJob) -> None:
        when = now()
        name = self._model_name(job, when)
        destination = self.store.models_dir / self.store.model_slug(name)
        # A rename of a complete directory: the model is never listed half-written.
        os.replace(running.model_path, destination)
        root = job.model
        parent = self.store.get_model(job.model)
        if parent is not None:
            root = parent.root
        self.store.add_model(
            ModelRecord(name, when, job.organization_id, job.id, root, str(destination))
        )
        job.fine_tuned_model = name
        if job.dialect == "legacy":
            self.emit(job, f"Uploaded model: {name}", created_at=when)
        else:
            self.emit(job, f"New fine-tuned model created: {name}", created_at=when)
        results = self._store_results(job, running.rows)
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

    def _model_name(self, job: JobRecord, when: int) -> str:
        while True:
            if job.dialect == "legacy":
                name = naming.legacy_name(job.model, job.organization_id, job.suffix, when)
            else:
                name = naming.current_name(job.model, job.organization_id, job.suffix)
            if self.store.get_model(name) is None:
                return name
            when += 1  # two jobs with the same suffix finished within one second

    def _store_results(self, job: JobRecord, rows: list[dict[str, Any]]) -> FileRecord:
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

    # --- cancel -------------------------------------------------------------------------
    async def cancel(self, job: JobRecord) -> JobRecord:
        if job.id in self._queue:
            self._queue.remove(job.id)
        running = self._running.get(job.id)
        if running is not None:
            running.cancelled = True
            await self._terminate(running.process)
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
