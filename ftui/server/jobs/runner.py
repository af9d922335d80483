"""The job queue: each job trains in its own child process (`python -m ftui.server.training.train`).

The child reports through `JOB_DIR/progress.jsonl`, which `jobprogress` applies to the job
exactly once; at the end the runner registers the model and a results file. Keeping training out
of the server process keeps the API responsive and returns all of a job's memory when it ends.

Disk trouble never stops the queue: a job that cannot start because the data dir is full or
read-only keeps its place and is tried again (with an event saying why it waits); a running job
whose files or records cannot be written is stopped and fails with a reason naming the disk.

One module, although long: launching, watching, pausing, cancelling and recovering a job all
change the same in-memory queue and running set under one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ftui.server import API_KEY_ENV, hf
from ftui.server.diskio import (
    StorageProblem,
    StorageUnavailable,
    open_private,
    storage_problem,
    write_atomically,
)
from ftui.server.jobs import naming, resultsfile
from ftui.server.jobs.jobprogress import ProgressApplier, RunningJob
from ftui.server.jobs.signals import JobSignals
from ftui.server.jobs.store import (
    CheckpointRecord,
    FileRecord,
    JobRecord,
    ModelRecord,
    Store,
    now,
)
from ftui.server.training import checkpoints, jobspec, progresslog
from ftui.server.training.jobspec import ClassificationOptions, Hyperparameters, JobSpec

log = logging.getLogger("ftui.server.jobs.runner")

POLL_SECONDS = 0.2
CANCEL_GRACE_SECONDS = 5.0
PAUSE_TIMEOUT_SECONDS = 600.0
MAX_ATTEMPTS = 3  # starts of one job, counting resumes after crashes
RETRY_FIRST_SECONDS = 1.0  # a job waiting for the disk tries again after this, doubling...
RETRY_MAX_SECONDS = 10.0  # ...up to this (a new job or a freed slot tries at once)
# Secrets that a training process has no use for: it must not inherit them.
SECRET_ENV = (API_KEY_ENV, "OPENAI_API_KEY")


class Runner(ProgressApplier):
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
        self._retry_delay: float | None = None  # set while the head of the queue waits
        self._waiting: dict[str, str] = {}  # job id -> why it waits (announced once)
        self._cancels: dict[str, asyncio.Future[JobRecord]] = {}

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self._recover()
        self._scheduler = self._spawn(self._schedule(), "the job scheduler")

    async def stop(self) -> None:
        if self._scheduler:
            self._scheduler.cancel()
        for running in list(self._running.values()):
            running.cancelled = True  # not a cancel of the job: it resumes at the next start
            await self._terminate(running.process)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task:
        """A background task whose failure is logged when it happens (never "Task exception was
        never retrieved"); the tasks catch what they can handle themselves."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(task: asyncio.Task) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("%s failed", what, exc_info=task.exception())

        task.add_done_callback(done)
        return task

    async def _recover(self) -> None:
        """Jobs that were training when the server stopped resume from their last checkpoint."""
        for job in self.store.jobs_with_status("running"):
            try:
                await self._kill_orphan(job)
                self._apply_progress(job.id, None)  # what the old process wrote after our read
                job = self.store.get_job(job.id)
                assert job is not None
                self._retry_or_fail(job, "The server stopped while this job was training")
            except Exception:  # one job's trouble must not keep the server from starting
                log.exception("could not recover job %s; it stays as it is", job.id)
        for job in self.store.jobs_with_status("validating_files", "queued"):
            try:
                # A queued job was announced before the restart: queue it again silently.
                self.submit(job.id, announce=job.status != "queued")
            except Exception:
                log.exception("could not queue job %s again", job.id)

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
        with self.store.transaction():
            self.emit(job, f"{what_happened}; {how}.", level="warn")
            job.status = "queued"
            self._save(job)
        if job.id not in self._queue:
            self._queue.insert(0, job.id)
        self._wake.set()

    # --- events -------------------------------------------------------------------------
    def emit(self, job: JobRecord, message: str, **kwargs: Any) -> None:
        self.store.add_event(job.id, message, **kwargs)
        self.signals.notify(job.id)

    def _save(self, job: JobRecord) -> None:
        self.store.save_job(job)
        self.signals.notify(job.id)

    def _record(self, write: Callable[[], None]) -> None:
        """Run ``write`` (one transaction). When the disk is full, give up the reserved space and
        try once more: how a job ended must be recorded even then."""
        try:
            write()
        except Exception as exc:
            problem = storage_problem(exc)
            if problem is None or problem.kind != "full" or not self.store.release_reserve():
                raise
            write()

    # --- queue --------------------------------------------------------------------------
    def submit(self, job_id: str, *, announce: bool = True) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.terminal or job_id in self._queue:
            return
        if job.status == "validating_files":
            self.announce(job, "validated")
            job.status = "queued"
            self._save(job)
        self._queue.append(job_id)
        if announce:
            self.announce(job, "enqueued", number=self._queue_number(job_id))
        self._wake.set()

    def _queue_number(self, job_id: str) -> int:
        return max(0, self._queue.index(job_id) - (self.max_concurrent - len(self._running)))

    def _announce_queue(self) -> None:
        for job_id in self._queue:
            job = self.store.get_job(job_id)
            if job:
                self.announce(job, "in_queue", number=self._queue_number(job_id))

    async def _schedule(self) -> None:
        """Start queued jobs while there are free slots. Nothing stops this loop: a job that
        cannot start fails with a reason, or waits (at the head of the queue) for the disk."""
        while True:
            if self._retry_delay is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._retry_delay)
            self._wake.clear()
            try:
                await self._start_queued()
            except Exception:
                log.exception("the job scheduler hit an error; it goes on")
                self._retry_delay = RETRY_MAX_SECONDS

    async def _start_queued(self) -> None:
        started = False
        while self._queue and len(self._running) < self.max_concurrent:
            job_id = self._queue[0]
            job = self.store.get_job(job_id)
            if job is None or job.status != "queued":
                self._queue.remove(job_id)
                continue
            try:
                await self._launch(job)
            except Exception as exc:
                problem = storage_problem(exc)
                if problem is not None:
                    self._wait_for_storage(job_id, problem)
                    return  # the job keeps its place; the ones behind it wait too
                if job_id in self._queue:
                    self._queue.remove(job_id)
                log.exception("could not start job %s", job_id)
                self._fail_quietly(
                    job_id, f"The job could not be started: {type(exc).__name__}: {exc}"
                )
                continue
            if job_id in self._queue:
                self._queue.remove(job_id)
            if self._waiting.pop(job_id, None) is not None:
                log.warning("job %s started: the data directory takes writes again", job_id)
            self._retry_delay = None
            started = True
        if not self._queue:
            self._retry_delay = None
        if started and self._queue:
            self._announce_queue()

    def _wait_for_storage(self, job_id: str, problem: StorageProblem) -> None:
        delay = self._retry_delay or RETRY_FIRST_SECONDS / 2
        self._retry_delay = min(delay * 2, RETRY_MAX_SECONDS)
        if self._waiting.get(job_id) == problem.kind:
            return
        self._waiting[job_id] = problem.kind
        log.warning("job %s waits to start: %s", job_id, problem.message)
        job = self.store.get_job(job_id)
        if job is None:
            return
        message = f"{problem.message}; the job waits and starts once the server can write again."
        # On a full disk even this event may not fit: the job waits all the same.
        with contextlib.suppress(Exception):
            self.emit(job, message, level="warn")

    def _fail_quietly(self, job_id: str, reason: str, code: str = "internal") -> None:
        try:
            job = self.store.get_job(job_id)
            if job is not None and not job.terminal:
                self._finish_failed(job, reason, code=code)
        except Exception:
            log.exception("could not record the failure of job %s", job_id)

    # --- running a job ------------------------------------------------------------------
    def _resume_point(self, job: JobRecord) -> CheckpointRecord | None:
        for checkpoint in reversed(self.store.checkpoints(job.id)):
            if (Path(checkpoint.path) / checkpoints.STATE_FILE).exists():
                return checkpoint
        return None

    def _spec(self, job: JobRecord) -> JobSpec:
        job_dir = self.store.job_dir(job.id)
        parent = self.store.get_model(job.model)
        classification = None
        if job.params.get("compute_classification_metrics"):
            classification = ClassificationOptions(
                n_classes=job.params.get("classification_n_classes"),
                positive_class=job.params.get("classification_positive_class"),
                betas=job.params.get("classification_betas"),
            )
        resume = self._resume_point(job)
        validation_file = self._file_path(job.validation_file)
        return JobSpec(
            job_id=job.id,
            dialect=job.dialect,
            base_model=job.model,
            base_model_path=Path(parent.path) if parent else None,
            data_dir=str(self.store.data_dir),
            training_file=self._file_path(job.training_file) or "",
            validation_file=validation_file,
            # As requested: the child resolves the defaults, knowing the number of examples.
            hyperparams=Hyperparameters.from_params(job.params),
            lora=job.params.get("lora"),
            classification=classification,
            checkpoints_dir=job_dir / "checkpoints",
            resume_from=Path(resume.path) if resume else None,
            seed=job.seed,
            output_dir=job_dir / "model",
            device=self.device,
            threads=self.threads,
            concurrent_jobs=self.max_concurrent,
        )

    def _file_path(self, file_id: str | None) -> str | None:
        if file_id is None:
            return None
        record = self.store.get_file(file_id)
        if record is None:
            raise FileNotFoundError(f"The file {file_id} was deleted before the job started.")
        return str(self.store.blob_path(record.sha256))

    async def _launch(self, job: JobRecord) -> None:
        """Start the job's training process. Raises StorageUnavailable (or the OSError) when the
        data dir cannot take the job's files: the job then stays queued."""
        problem = self.store.storage_problem()
        if problem is not None:
            raise StorageUnavailable(problem)
        job_dir = self.store.make_job_dir(job.id)
        try:
            spec = self._spec(job)
        except FileNotFoundError as exc:
            self._finish_failed(job, str(exc), code="invalid_training_file")
            return
        write_atomically(job_dir / jobspec.SPEC_FILE, spec.dumps())
        # A line cut short by an earlier run must not swallow this run's first line.
        progresslog.drop_torn_tail(job_dir / progresslog.FILE_NAME)
        log_fd = open_private(job_dir / "train.log", os.O_WRONLY | os.O_APPEND)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ftui.server.training.train",
                str(job_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                env=self._child_env(),
                start_new_session=True,
                umask=0o077,  # checkpoints, models and logs are private like the rest
            )
        finally:
            os.close(log_fd)
        # A cancel or pause while the process started wins: the job must not run.
        current = self.store.get_job(job.id)
        if current is None or current.status != "queued":
            await self._terminate(process)
            return
        job = current
        running = RunningJob(job.id, process)
        first_start = job.pid is None
        job.pid = process.pid
        job.attempts += 1
        job.model_tag = job.model_tag or naming.new_tag()
        job.status = "running"
        try:
            with self.store.transaction():
                if first_start:
                    self.announce(job, "started")
                self._save(job)
        except Exception:
            await self._terminate(process)  # unrecorded, it must not train
            raise
        self._running[job.id] = running
        self._spawn(self._watch(running), f"watching job {job.id}")

    @staticmethod
    def _child_env() -> dict[str, str]:
        return hf.child_env(os.environ, drop=SECRET_ENV)

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
        except Exception as exc:  # the job must fail with a reason, never stay running
            problem = storage_problem(exc)
            if problem is None:
                log.exception("watching job %s failed", running.job_id)
                reason, code = "Internal error while finishing the job.", "internal"
            else:
                log.warning("job %s stopped: %s", running.job_id, problem.message)
                reason, code = problem.job_failure, f"storage_{problem.kind}"
            await self._terminate(running.process)
            if not running.cancelled:
                await self._fail_eventually(running.job_id, reason, code)
        finally:
            self._running.pop(running.job_id, None)
            running.done.set()
            self._wake.set()

    async def _fail_eventually(self, job_id: str, reason: str, code: str) -> None:
        """Record the failure, retrying while the disk refuses even that (read-only database):
        the job must not stay `running` once its process is gone."""
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                job = self.store.get_job(job_id)
                if job is None or job.terminal:
                    return
                self._finish_failed(job, reason, code=code)
                return
            except Exception as exc:
                if storage_problem(exc) is None:
                    log.exception("could not record the failure of job %s", job_id)
                    return
                log.warning("cannot record the failure of job %s yet: %s", job_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

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
            with self.store.transaction():
                self.announce(job, "paused", where=where)
                job.status = "paused"
                job.estimated_finish = None
                self._save(job)
            return
        if running.failure is None and code is not None and code < 0:
            # Killed from outside (the OOM killer, kill -9): like a crash, resume if we can.
            self._retry_or_fail(job, f"The training process was killed by signal {-code}")
            return
        if running.failure is not None:
            self._finish_failed(job, running.failure, code=running.failure_code)
            return
        # It could not even report why: a full or read-only disk is the usual cause.
        problem = self.store.storage_problem()
        if problem is not None:
            self._finish_failed(job, problem.job_failure, code=f"storage_{problem.kind}")
        else:
            self._finish_failed(job, self._crash_reason(job.id, code), code="training_failed")

    def _crash_reason(self, job_id: str, code: int | None) -> str:
        tail = ""
        with contextlib.suppress(OSError):
            lines = (self.store.job_dir(job_id) / "train.log").read_text(errors="replace")
            tail = next((ln for ln in reversed(lines.splitlines()) if ln.strip()), "")
        return f"The training process exited with code {code}" + (f": {tail}" if tail else ".")

    def _finish_succeeded(self, job: JobRecord, running: RunningJob) -> None:
        """Store the results file, move the model in, then record all in one transaction; a
        failure on the way undoes the earlier steps (and the job fails with the reason)."""
        assert running.model_path is not None
        when = now()
        name = self._model_name(job, when)
        while self.store.get_model(name) is not None:  # same suffix, same second
            when += 1
            name = self._model_name(job, when)
        destination = self.store.models_dir / self.store.model_slug(name)
        results = self._store_results(job)
        try:
            # A rename of a complete directory: the model is never listed half-written.
            os.replace(running.model_path, destination)
        except BaseException:
            self._forget_results(results)
            raise
        parent = self.store.get_model(job.model)
        root = parent.root if parent else job.model

        def write() -> None:
            with self.store.transaction():
                self.store.add_model(
                    ModelRecord(name, when, job.organization_id, job.id, root, str(destination))
                )
                job.fine_tuned_model = name
                self.announce(job, "model_created", created_at=when, name=name)
                job.result_files = [results.id]
                self.announce(job, "results_uploaded", file_id=results.id)
                self.announce(job, "succeeded")
                job.status = "succeeded"
                job.finished_at = now()
                job.estimated_finish = None
                self._save(job)

        try:
            self._record(write)
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(destination, running.model_path)
            self._forget_results(results)
            raise

    def _forget_results(self, results: FileRecord) -> None:
        try:
            self.store.delete_file(results.id)
        except Exception:
            log.exception("could not remove the results file %s", results.id)

    def _store_results(self, job: JobRecord) -> FileRecord:
        rows = self.result_rows(job.id)
        content = resultsfile.render(rows, job.dialect, job.validation_file is not None)
        return self.store.add_file_from(
            content, filename=resultsfile.filename(job.dialect), purpose="fine-tune-results"
        )

    def _discard_outputs(self, job_id: str) -> None:
        job_dir = self.store.job_dir(job_id)
        for name in ("model", "model.partial"):
            shutil.rmtree(job_dir / name, ignore_errors=True)

    def _finish_failed(self, job: JobRecord, reason: str, *, code: str) -> None:
        self._discard_outputs(job.id)

        def write() -> None:
            with self.store.transaction():
                self.announce(job, "failed", reason=reason)
                job.status = "failed"
                job.error = {"code": code, "message": reason, "param": None}
                job.finished_at = now()
                job.estimated_finish = None
                self._save(job)

        self._record(write)

    # --- cancel, pause, resume ------------------------------------------------------------
    async def cancel(self, job: JobRecord) -> JobRecord:
        """Cancel once however many requests ask at the same time: they all get its outcome.
        Shielded, so a client that hangs up does not leave the job half-cancelled."""
        pending = self._cancels.get(job.id)
        if pending is None:
            pending = asyncio.ensure_future(self._cancel(job.id))
            self._cancels[job.id] = pending

            def done(future: asyncio.Future[JobRecord], job_id: str = job.id) -> None:
                self._cancels.pop(job_id, None)
                if not future.cancelled() and future.exception() is not None:
                    log.error("cancelling job %s failed", job_id, exc_info=future.exception())

            pending.add_done_callback(done)
        return await asyncio.shield(pending)

    async def _cancel(self, job_id: str) -> JobRecord:
        if job_id in self._queue:
            self._queue.remove(job_id)
        self._waiting.pop(job_id, None)
        running = self._running.get(job_id)
        if running is not None:
            running.cancelled = True
            await self._terminate(running.process)
            await running.done.wait()
        job = self.store.get_job(job_id)
        assert job is not None  # only a terminal job can be deleted
        if job.terminal:
            return job  # it ended while it was being stopped
        self._discard_outputs(job_id)

        def write() -> None:
            with self.store.transaction():
                self.announce(job, "cancelled")
                job.status = "cancelled"
                job.finished_at = now()
                job.estimated_finish = None
                self._save(job)

        self._record(write)
        self._wake.set()
        return job

    async def pause(self, job: JobRecord) -> JobRecord:
        """A running job checkpoints where it is and stops, freeing the device."""
        running = self._running.get(job.id)
        if running is None:
            if job.id in self._queue:
                self._queue.remove(job.id)
            self._waiting.pop(job.id, None)
            with self.store.transaction():
                self.announce(job, "paused_waiting")
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
        with self.store.transaction():
            self.announce(job, "resumed", where=where)
            job.status = "queued"
            self._save(job)
        if job.id not in self._queue:
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
