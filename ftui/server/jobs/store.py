"""Durable server state: SQLite (WAL) for metadata, a content-addressed blob directory for files.

Layout of the data dir:
    ftui.db                  metadata (files, jobs, events, models)
    blobs/ab/abcdef…         file contents by SHA-256, written to blobs/tmp then renamed
    jobs/<job id>/           a job's spec, progress log and (while training) its model
    models/<slug>/           weights of fine-tuned models that are listed

Every write is a transaction or a rename, so a crash leaves either the old or the new state.
Everything is created private to the server's user (directories 0700, files 0600), and a data dir
made by an older version is tightened when the store opens. `reserved-space` is a 1 MiB file
the store gives up when the disk fills, so a job that a full disk stopped can still be recorded
as failed; it is taken again once there is room.

One module, although long: every table shares one connection, one lock and one transaction
helper, and the blob writes and deletes must hold that lock with the rows that name them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import secrets
import shutil
import sqlite3
import stat
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ftui.server.diskio import (
    PRIVATE_DIR,
    SpaceReserve,
    StorageProblem,
    open_private,
    private_dir,
)

log = logging.getLogger("ftui.server.jobs.store")

DB_NAME = "ftui.db"
RESERVE_NAME = "reserved-space"
MAX_SLUG_CHARS = 100
# What the server keeps directly in its data dir (ftui.db* adds the -wal, -shm and set-aside
# copies); basemodels/ and base_models.toml belong to the base model table.
OWN_ENTRIES = frozenset(
    {DB_NAME, RESERVE_NAME, "blobs", "jobs", "models", "trash", "basemodels", "base_models.toml"}
)  # model directory names stay far below the usual 255-byte limit

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
_ALPHABET = string.ascii_letters + string.digits

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL,
    filename TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL,
    status_details TEXT, sha256 TEXT NOT NULL, examples INTEGER, format TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, dialect TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
    type TEXT NOT NULL, data TEXT
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, created INTEGER NOT NULL, owned_by TEXT NOT NULL,
    job_id TEXT, root TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    step INTEGER NOT NULL, model_id TEXT NOT NULL, path TEXT NOT NULL, metrics TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints (job_id, step);
"""


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None: JSON has no spelling for them, and a
    stored one would break every response that includes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _non_finite_keys(value: Any, where: str = "") -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    if isinstance(value, dict):
        return [k for key, v in value.items() for k in _non_finite_keys(v, str(key))]
    if isinstance(value, list):
        return [k for v in value for k in _non_finite_keys(v, where)]
    return []


def _dumps(value: Any) -> str:
    return json.dumps(_finite(value), allow_nan=False)


class CorruptDatabase(sqlite3.DatabaseError):
    pass


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return (
        isinstance(exc, CorruptDatabase)
        or name.startswith("SQLITE_CORRUPT")
        or (name == "SQLITE_NOTADB")
    )


@dataclass
class FileRecord:
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    status_details: str | None
    sha256: str
    examples: int | None = None
    format: str | None = None


@dataclass
class JobRecord:
    """One fine-tuning job, whichever dialect created it; `views` renders it for each."""

    id: str
    dialect: str  # "legacy" or "current": decides event wording, names and results columns
    created_at: int
    updated_at: int
    status: str  # validating_files | queued | running | succeeded | failed | cancelled
    model: str
    training_file: str
    validation_file: str | None
    params: dict[str, Any]  # as requested; None means "use the default"
    hyperparams: dict[str, Any] | None = None  # resolved once training starts
    suffix: str | None = None
    seed: int = 0
    organization_id: str = "org-personal"
    fine_tuned_model: str | None = None
    result_files: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    estimated_finish: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None
    # Runner bookkeeping, never shown on the wire: how far progress.jsonl has been applied, the
    # training process, and what was already announced (so a resumed run repeats no event).
    progress_offset: int = 0
    pid: int | None = None
    attempts: int = 0
    model_tag: str | None = None
    max_step: int = 0
    max_epoch: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


_JOB_COLUMNS = ("id", "dialect", "created_at", "updated_at", "status")


@dataclass
class EventRecord:
    seq: int
    id: str
    job_id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


@dataclass
class ModelRecord:
    id: str
    created: int
    owned_by: str
    job_id: str | None
    root: str
    path: str
    kind: str = "fine-tuned"  # or "checkpoint": usable as a model, listed with its job


@dataclass
class CheckpointRecord:
    id: str
    job_id: str
    created_at: int
    step: int
    model_id: str
    path: str
    metrics: dict[str, Any]


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "blobs"
        self.jobs_dir = self.data_dir / "jobs"
        self.models_dir = self.data_dir / "models"
        self._trash_dir = self.data_dir / "trash"
        self.reserve = SpaceReserve(self.data_dir / RESERVE_NAME)
        for d in (self.blob_dir / "tmp", self.jobs_dir, self.models_dir, self._trash_dir):
            private_dir(d)
        self._tighten_modes()
        self._lock = threading.RLock()
        self._depth = 0
        self._db = self._open_db()
        self._repair_non_finite()
        self._collect_garbage()
        self.ensure_reserve()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- opening ------------------------------------------------------------------------
    def _tighten_modes(self) -> None:
        """A data dir from an older version (or made by hand) may be readable by everyone: keep
        only the owner's bits on it and on the entries of ours it holds directly (the rest is
        below those); anything else someone keeps there is left alone."""
        ours = [self.data_dir]
        for entry in self.data_dir.iterdir():
            if entry.name in OWN_ENTRIES or entry.name.startswith(DB_NAME):
                ours.append(entry)
        failed = []
        for entry in ours:
            try:
                mode = entry.lstat().st_mode
                if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                    os.chmod(entry, stat.S_IMODE(mode) & PRIVATE_DIR)
            except OSError as exc:
                failed.append(f"{entry.name}: {exc.strerror}")
        if failed:
            log.warning("could not make %s private: %s", self.data_dir, ", ".join(failed))

    def _open_db(self) -> sqlite3.Connection:
        path = self.data_dir / DB_NAME
        try:
            return self._connect(path)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            aside = self._set_aside(path)
            log.error(
                "ftui serve: WARNING: the database %s is damaged (%s). It was moved to %s and "
                "the server starts with an empty database: earlier files, jobs and models are "
                "no longer listed, though their data is still under %s. To try to recover the "
                "old records: sqlite3 %s .recover | sqlite3 recovered.db",
                path,
                exc,
                aside,
                self.data_dir,
                aside,
            )
        return self._connect(path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        if not path.exists():  # SQLite gives the -wal and -shm files the database's mode
            os.close(open_private(path, os.O_WRONLY))
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise CorruptDatabase("; ".join(problems[:3]))
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _set_aside(path: Path) -> Path:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):  # moved together, so the copy opens with its log
            source = path.with_name(path.name + suffix)
            if source.exists():
                os.replace(source, aside.with_name(aside.name + suffix))
        return aside

    def _repair_non_finite(self) -> None:
        """Older versions stored NaN hyperparameters (and metrics), which no JSON response can
        carry: replace them with null; a job that has not run yet fails with a reason."""
        pattern = "LIKE '%NaN%' OR {0} LIKE '%Infinity%'"
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE body {pattern.format('body')}"
        ).fetchall()
        for row in rows:
            keys = sorted(set(_non_finite_keys(json.loads(row["body"]))))
            if not keys:
                continue
            job = self._job_from_row(row)  # _finite applies when it is saved again
            log.warning("job %s had non-finite values in %s; set to null", job.id, keys)
            if not job.terminal:
                reason = (
                    f"The job's {', '.join(keys)} held a number that is not finite (NaN or "
                    "Infinity), accepted by an older version of the server; it cannot train."
                )
                job.status = "failed"
                job.error = {"code": "invalid_hyperparameters", "message": reason, "param": None}
                job.finished_at = now()
                job.estimated_finish = None
                self.add_event(job.id, reason, level="error")
            self.save_job(job)
        for table, key, column in (("events", "seq", "data"), ("checkpoints", "id", "metrics")):
            rows = self._db.execute(
                f"SELECT {key}, {column} FROM {table} WHERE {column} {pattern.format(column)}"
            ).fetchall()
            for row in rows:
                value = json.loads(row[column]) if row[column] is not None else None
                if _non_finite_keys(value):
                    self._db.execute(
                        f"UPDATE {table} SET {column}=? WHERE {key}=?", (_dumps(value), row[key])
                    )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes so a crash keeps all or none of them (e.g. an event and its cursor)."""
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                # SQLite may have rolled back already (a full disk does): keep the real error.
                if self._depth == 1 and self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
            else:
                if self._depth == 1:
                    self._db.execute("COMMIT")
            finally:
                self._depth -= 1

    def _collect_garbage(self) -> None:
        """Remove what a crash can leave behind: temp blobs, half-deleted models."""
        try:
            for leftover in (self.blob_dir / "tmp").iterdir():
                leftover.unlink(missing_ok=True)
            for leftover in self._trash_dir.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError as exc:  # a read-only data dir still serves what it has
            log.warning("could not remove leftovers in %s: %s", self.data_dir, exc)

    # --- room to record failures ----------------------------------------------------------
    def ensure_reserve(self) -> StorageProblem | None:
        return self.reserve.ensure()

    def release_reserve(self) -> bool:
        return self.reserve.release()

    def storage_problem(self) -> StorageProblem | None:
        """Why a job should not start now (read-only, no room), or None."""
        return self.reserve.check()

    # --- files --------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256

    def _stage_blob(self, source: IO[bytes], chunk_size: int = 1 << 20) -> tuple[Path, str, int]:
        """Copy a stream to a private temp file, synced; returns (temp path, sha256, size)."""
        digest = hashlib.sha256()
        size = 0
        tmp = self.blob_dir / "tmp" / new_id("upload-")
        try:
            with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_EXCL), "wb") as out:
                while chunk := source.read(chunk_size):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest(), size

    def add_file_from(
        self,
        source: IO[bytes] | bytes,
        *,
        filename: str,
        purpose: str,
        examples: int | None = None,
        format: str | None = None,
    ) -> FileRecord:
        """Store content as a new file. Blobs are shared by SHA-256, so the blob's rename and the
        row's insert happen under the store's lock, as do delete_file's check and unlink: a
        file being deleted never takes away the blob of an upload with the same bytes."""
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        tmp, sha, size = self._stage_blob(source)
        record = FileRecord(
            id=new_id("file-"),
            bytes=size,
            created_at=now(),
            filename=filename,
            purpose=purpose,
            status="processed",
            status_details=None,
            sha256=sha,
            examples=examples,
            format=format,
        )
        try:
            with self._lock:
                final = self.blob_path(sha)
                private_dir(final.parent)
                os.replace(tmp, final)
                try:
                    self._insert_file(record)
                except BaseException:
                    if not self._blob_used(sha):
                        final.unlink(missing_ok=True)
                    raise
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        return record

    def _blob_used(self, sha256: str) -> bool:
        row = self._db.execute("SELECT 1 FROM files WHERE sha256=? LIMIT 1", (sha256,)).fetchone()
        return row is not None

    def _insert_file(self, record: FileRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.bytes,
                    record.created_at,
                    record.filename,
                    record.purpose,
                    record.status,
                    record.status_details,
                    record.sha256,
                    record.examples,
                    record.format,
                ),
            )

    def get_file(self, file_id: str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM files WHERE id=?", (file_id,)).fetchone()
        return FileRecord(**dict(row)) if row else None

    def list_files(self, purpose: str | None = None) -> list[FileRecord]:
        query, args = "SELECT * FROM files", ()
        if purpose:
            query, args = query + " WHERE purpose=?", (purpose,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, rowid", args).fetchall()
        return [FileRecord(**dict(r)) for r in rows]

    def delete_file(self, file_id: str) -> bool:
        """Unlist the file and remove its blob unless another file has the same bytes; both or
        neither (a blob that cannot be removed keeps the file listed)."""
        with self.transaction():
            row = self._db.execute("SELECT sha256 FROM files WHERE id=?", (file_id,)).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM files WHERE id=?", (file_id,))
            if not self._blob_used(row["sha256"]):
                self.blob_path(row["sha256"]).unlink(missing_ok=True)
        return True

    # --- jobs ---------------------------------------------------------------------------
    def _job_row(self, job: JobRecord) -> tuple:
        body = {k: v for k, v in job.__dict__.items() if k not in _JOB_COLUMNS}
        return (job.id, job.dialect, job.created_at, job.updated_at, job.status, _dumps(body))

    def add_job(self, job: JobRecord) -> None:
        with self._lock:
            self._db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?)", self._job_row(job))

    def save_job(self, job: JobRecord) -> None:
        job.updated_at = now()
        row = self._job_row(job)
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET dialect=?, created_at=?, updated_at=?, status=?, body=? "
                "WHERE id=?",
                (*row[1:], row[0]),
            )

    @staticmethod
    def _job_from_row(row: sqlite3.Row) -> JobRecord:
        return JobRecord(**{k: row[k] for k in _JOB_COLUMNS}, **json.loads(row["body"]))

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return self._job_from_row(row) if row else None

    def list_jobs(self) -> list[JobRecord]:
        """All jobs, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at, rowid").fetchall()
        return [self._job_from_row(r) for r in rows]

    def jobs_needing_file(self, file_id: str) -> list[JobRecord]:
        """Unfinished jobs that train or validate on `file_id`: each reads the file when it
        starts, and again whenever it resumes (after a pause or a server restart)."""
        return [
            job
            for job in self.list_jobs()
            if not job.terminal and file_id in (job.training_file, job.validation_file)
        ]

    def jobs_with_status(self, *statuses: str) -> list[JobRecord]:
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at, rowid",
                statuses,
            ).fetchall()
        return [self._job_from_row(r) for r in rows]

    def delete_job(self, job_id: str) -> None:
        for checkpoint in self.checkpoints(job_id):
            self.delete_checkpoint(checkpoint)
        with self.transaction():
            self._db.execute("DELETE FROM events WHERE job_id=?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def make_job_dir(self, job_id: str) -> Path:
        return private_dir(self.job_dir(job_id))

    # --- events -------------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
        created_at: int | None = None,
    ) -> EventRecord:
        created = created_at if created_at is not None else now()
        event_id = new_id("ftevent-")
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO events (id, job_id, created_at, level, message, type, data) "
                "VALUES (?,?,?,?,?,?,?)",
                (event_id, job_id, created, level, message, type, _dumps(data)),
            )
            seq = cur.lastrowid
        assert seq is not None
        return EventRecord(seq, event_id, job_id, created, level, message, type, data)

    def events(self, job_id: str, after_seq: int = 0) -> list[EventRecord]:
        """A job's events, oldest first, with sequence numbers greater than `after_seq`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE job_id=? AND seq>? ORDER BY seq", (job_id, after_seq)
            ).fetchall()
        return [self._event_from_row(r) for r in rows]

    @staticmethod
    def _event_from_row(row: sqlite3.Row) -> EventRecord:
        data = dict(row)
        data["data"] = json.loads(data["data"]) if data["data"] is not None else None
        return EventRecord(**data)

    # --- models -------------------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO models VALUES (?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.created,
                    record.owned_by,
                    record.job_id,
                    record.root,
                    record.path,
                    record.kind,
                ),
            )

    def get_model(self, model_id: str) -> ModelRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM models WHERE id=?", (model_id,)).fetchone()
        return ModelRecord(**dict(row)) if row else None

    def list_models(self, kind: str = "fine-tuned") -> list[ModelRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM models WHERE kind=? ORDER BY created, rowid", (kind,)
            ).fetchall()
        return [ModelRecord(**dict(r)) for r in rows]

    # --- checkpoints --------------------------------------------------------------------
    def add_checkpoint(self, record: CheckpointRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.job_id,
                    record.created_at,
                    record.step,
                    record.model_id,
                    record.path,
                    _dumps(record.metrics),
                ),
            )

    def checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        """A job's checkpoints, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM checkpoints WHERE job_id=? ORDER BY step", (job_id,)
            ).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            data["metrics"] = json.loads(data["metrics"])
            out.append(CheckpointRecord(**data))
        return out

    def delete_checkpoint(self, record: CheckpointRecord) -> None:
        with self._lock:
            self._db.execute("DELETE FROM checkpoints WHERE id=?", (record.id,))
        self.delete_model(record.model_id)

    def delete_model(self, model_id: str) -> bool:
        """Unlist the model, then remove its weights; a crash in between leaves only trash."""
        record = self.get_model(model_id)
        if record is None:
            return False
        with self._lock:
            self._db.execute("DELETE FROM models WHERE id=?", (model_id,))
            path = Path(record.path)
            trash = self._trash_dir / new_id("model-")
            try:
                if path.exists():
                    os.replace(path, trash)
            except OSError:
                self.add_model(record)  # the weights are still where the row says: list it again
                raise
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def model_slug(self, model_id: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
        safe = safe[:MAX_SLUG_CHARS]  # the hash below keeps long names apart
        return f"{safe}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"

    def iter_blob(self, record: FileRecord, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        with open(self.blob_path(record.sha256), "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk
