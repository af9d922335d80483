"""The local cache of job state: SQLite under the user cache dir, one namespace per profile.

It keeps what the client last saw (jobs, events, files, models, results rows, the detected
dialect) so ftui can show the last known state at once at start-up and while the network is
down, and so ``follow`` resumes after ftui restarts.

- Events are append-only and de-duplicated twice: by position in the job's event history
  (``seq``) and by event id where the dialect has ids. The follow cursor is the number of events
  stored, the id of the last one, and the mode (``sse`` or ``poll``) that produced them.
- Several ftui processes may use one cache file: WAL journal, a busy timeout and one short
  transaction per call.
- A cache file that is corrupt or unreadable is moved aside (``*.corrupt-<time>``) and rebuilt
  with one :class:`CacheWarning`; it never crashes ftui. The cache is disposable by design: only
  the newest ``KEEP_CORRUPT`` copies set aside are kept.
- One module, although long: every read and write shares the schema, the connection and the
  corrupt-file recovery.
- It stores what the API returned and nothing else: API keys never reach it. Still, it holds
  the user's job history, file names and results: the directory ftui creates for it is 0700 and
  the database files are 0600, whatever the umask (existing ones are tightened at open).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from ftui.types import FileObject, Job, JobEvent, Model, ResultRow

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    profile TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (profile, key));
CREATE TABLE IF NOT EXISTS jobs (
    profile TEXT NOT NULL, id TEXT NOT NULL, created_at INTEGER, json TEXT NOT NULL,
    seen_at REAL NOT NULL, PRIMARY KEY (profile, id));
CREATE INDEX IF NOT EXISTS jobs_newest ON jobs (profile, created_at DESC);
CREATE TABLE IF NOT EXISTS events (
    profile TEXT NOT NULL, job_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT,
    json TEXT NOT NULL, PRIMARY KEY (profile, job_id, seq));
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (profile, job_id, event_id)
    WHERE event_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS follow (
    profile TEXT NOT NULL, job_id TEXT NOT NULL, mode TEXT NOT NULL,
    PRIMARY KEY (profile, job_id));
CREATE TABLE IF NOT EXISTS files (
    profile TEXT NOT NULL, id TEXT NOT NULL, created_at INTEGER, json TEXT NOT NULL,
    PRIMARY KEY (profile, id));
CREATE TABLE IF NOT EXISTS models (
    profile TEXT NOT NULL, id TEXT NOT NULL, created INTEGER, json TEXT NOT NULL,
    PRIMARY KEY (profile, id));
CREATE TABLE IF NOT EXISTS results (
    profile TEXT NOT NULL, job_id TEXT NOT NULL, idx INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (profile, job_id, idx));
"""
_TABLES = ("meta", "jobs", "events", "follow", "files", "models", "results")
KEEP_CORRUPT = 2  # copies of unusable cache files kept for a post-mortem, newest first


class CacheWarning(UserWarning):
    """The cache file was unusable and has been set aside; ftui carries on with a fresh one."""


def default_cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("ftui")) / "cache.sqlite3"


@dataclass(frozen=True)
class FollowCursor:
    """Where ``follow`` got to: events stored so far, the last one's id, and the mode used."""

    count: int = 0
    last_id: str | None = None
    mode: str | None = None


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Cache:
    """One cache file. Use :meth:`profile` for a profile's namespace. Thread-safe."""

    def __init__(self, path: Path | str | None = None, *, busy_timeout: float = 10.0):
        self.path = Path(path) if path is not None else default_cache_path()
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._open()

    # -- opening, corruption -------------------------------------------------------------------
    def _connect(self, target: str) -> sqlite3.Connection:
        clean = target != ":memory:" and self._closed_cleanly()  # before the WAL is reopened
        conn = sqlite3.connect(
            target, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if target != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            # A damaged page is not always hit by the first queries, so scan at open (~70 ms
            # for a 60 MB cache) unless the file is exactly as a clean close of ours left it.
            if not clean:
                check = conn.execute("PRAGMA quick_check").fetchone()
                if not check or check[0] != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {check and check[0]}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                drop = "".join(f"DROP TABLE IF EXISTS {t};" for t in _TABLES) if version else ""
                conn.executescript(
                    f"BEGIN IMMEDIATE;{drop}{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> None:
        try:
            self._make_private()
            self._conn = self._connect(str(self.path))
            return
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise
            problem = exc
        except OSError as exc:
            problem = exc
        self._set_aside(problem)

    def _make_private(self) -> None:
        """Create the directory (0700) and the database file (0600) before SQLite does: SQLite
        gives its -wal and -shm files the database file's mode. A directory ftui did not make
        for its own use (a path given by the caller) keeps its mode."""
        parent = self.path.parent
        own_dir = parent == default_cache_path().parent or not parent.exists()
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # Tightening is best effort (a file of another user stays as it is and still works).
        for name in ([parent] if own_dir else []) + [self.path]:
            with contextlib.suppress(OSError):
                os.chmod(name, 0o700 if name == parent else 0o600)
        for name in (f"{self.path}-wal", f"{self.path}-shm"):
            with contextlib.suppress(OSError):
                os.chmod(name, 0o600)

    def _prune_aside(self) -> None:
        """Delete all but the newest ``KEEP_CORRUPT`` copies set aside (the name holds the time
        it was set aside; the file's mtime is that of its last write)."""
        prefix = f"{self.path.name}.corrupt-"
        copies = sorted(
            (
                f
                for f in self.path.parent.glob(prefix + "*")
                if not f.name.endswith(("-wal", "-shm"))
            ),
            key=lambda f: f.name[len(prefix) :],
            reverse=True,
        )
        for old in copies[KEEP_CORRUPT:]:
            for name in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
                with contextlib.suppress(OSError):
                    name.unlink()

    def _set_aside(self, problem: BaseException) -> None:
        # Sorts by time; the nanoseconds keep copies set aside within one second apart.
        stamp = time.strftime("%Y%m%d-%H%M%S") + f".{time.time_ns() % 10**9:09d}"
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        moved = False
        with contextlib.suppress(OSError):
            if self.path.exists():
                os.replace(self.path, aside)
                moved = True
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        if moved:
            self._prune_aside()
        try:
            self._make_private()
            self._conn = self._connect(str(self.path))
            where = f"moved to {aside.name}" if moved else "rebuilt"
            msg = f"cache {self.path} was unusable ({problem}); {where}, starting a fresh cache"
        except (sqlite3.Error, OSError) as exc:
            self._conn = self._connect(":memory:")
            msg = (
                f"cache {self.path} is unusable ({problem}; {exc}); "
                "keeping this session's cache in memory only"
            )
        # One report: a warning (the TUI shows it in the app, `ftui` commands print it as one
        # line), not a log record besides.
        warnings.warn(msg, CacheWarning, stacklevel=3)

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        """Run ``fn`` in one short transaction; rebuild the cache once if it turns out corrupt."""
        with self._lock:
            for attempt in (0, 1):
                conn = self._conn
                assert conn is not None, "cache is closed"
                try:
                    if write:
                        conn.execute("BEGIN IMMEDIATE")
                        try:
                            result = fn(conn)
                        except BaseException:
                            if conn.in_transaction:
                                conn.execute("ROLLBACK")
                            raise
                        conn.execute("COMMIT")
                        return result
                    return fn(conn)
                except sqlite3.DatabaseError as exc:
                    if _is_busy(exc) or attempt or isinstance(exc, sqlite3.IntegrityError):
                        raise
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                    self._set_aside(exc)
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._mark_clean()

    def _signature(self) -> str | None:
        if self.path.with_name(self.path.name + "-wal").exists():
            return None  # another process still has it open, or a crash left a journal
        try:
            st = self.path.stat()
        except OSError:
            return None
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"

    def _clean_marker(self) -> Path:
        return self.path.with_name(self.path.name + ".clean")

    def _mark_clean(self) -> None:
        signature = self._signature()
        with contextlib.suppress(OSError):
            if signature:
                self._clean_marker().write_text(signature)
            else:
                self._clean_marker().unlink(missing_ok=True)

    def _closed_cleanly(self) -> bool:
        try:
            return self._clean_marker().read_text() == self._signature()
        except OSError:
            return False

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def profile(self, name: str) -> ProfileCache:
        return ProfileCache(self, name)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"


class ProfileCache:
    """The part of the cache that belongs to one profile."""

    def __init__(self, cache: Cache, profile: str):
        self.cache = cache
        self.name = profile

    def __repr__(self) -> str:
        return f"ProfileCache({self.name!r}, {str(self.cache.path)!r})"

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.cache._run(
            lambda c: c.execute(
                "SELECT value FROM meta WHERE profile=? AND key=?", (self.name, key)
            ).fetchone()
        )
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self.cache._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO meta (profile, key, value) VALUES (?,?,?)",
                (self.name, key, json.dumps(value)),
            ),
            write=True,
        )

    # -- jobs ------------------------------------------------------------------------------------
    def put_jobs(self, jobs: Iterable[Job], *, complete: bool = False) -> None:
        """Store jobs; ``complete=True`` means this is the whole list (others are dropped)."""
        rows = [(self.name, j.id, j.created_at, json.dumps(dict(j.raw)), time.time()) for j in jobs]

        def write(c: sqlite3.Connection) -> None:
            if complete:
                c.execute("DELETE FROM jobs WHERE profile=?", (self.name,))
            c.executemany(
                "INSERT OR REPLACE INTO jobs (profile, id, created_at, json, seen_at) "
                "VALUES (?,?,?,?,?)",
                rows,
            )

        self.cache._run(write, write=True)

    def put_job(self, job: Job) -> None:
        self.put_jobs([job])

    def get_job(self, job_id: str) -> Job | None:
        row = self.cache._run(
            lambda c: c.execute(
                "SELECT json FROM jobs WHERE profile=? AND id=?", (self.name, job_id)
            ).fetchone()
        )
        return Job.from_api(json.loads(row[0])) if row else None

    def list_jobs(self, limit: int | None = None) -> list[Job]:
        """Cached jobs, newest first (the newest `limit` of them when given)."""
        rows = self.cache._run(
            lambda c: c.execute(
                "SELECT json FROM jobs WHERE profile=? ORDER BY created_at DESC, rowid DESC "
                "LIMIT ?",
                (self.name, -1 if limit is None else limit),
            ).fetchall()
        )
        return [Job.from_api(json.loads(r[0])) for r in rows]

    def jobs_seen_at(self) -> float | None:
        """When the newest cached job row was stored (Unix time), or None."""
        row = self.cache._run(
            lambda c: c.execute(
                "SELECT MAX(seen_at) FROM jobs WHERE profile=?", (self.name,)
            ).fetchone()
        )
        return row[0] if row else None

    # -- events ----------------------------------------------------------------------------------
    def record_events(
        self, job_id: str, start: int, events: Sequence[JobEvent], mode: str | None = None
    ) -> FollowCursor:
        """Store ``events`` as positions ``start``, ``start+1``… of the job's history.

        Positions and ids already stored are skipped (another process may have written them).
        Returns the cursor after the write.
        """
        if start < 0:
            raise ValueError("start must be >= 0")
        rows = [
            (self.name, job_id, start + i, e.id, json.dumps(dict(e.raw) or e.to_dict()))
            for i, e in enumerate(events)
        ]

        def write(c: sqlite3.Connection) -> FollowCursor:
            (have,) = c.execute(
                "SELECT COUNT(*) FROM events WHERE profile=? AND job_id=?", (self.name, job_id)
            ).fetchone()
            if start > have:  # positions stay contiguous, so the count is the cursor
                raise ValueError(f"events of {job_id} start at {start} but only {have} are stored")
            c.executemany(
                "INSERT OR IGNORE INTO events (profile, job_id, seq, event_id, json) "
                "VALUES (?,?,?,?,?)",
                rows,
            )
            if mode:
                c.execute(
                    "INSERT OR REPLACE INTO follow (profile, job_id, mode) VALUES (?,?,?)",
                    (self.name, job_id, mode),
                )
            return self._cursor(c, job_id)

        return self.cache._run(write, write=True)

    def _cursor(self, c: sqlite3.Connection, job_id: str) -> FollowCursor:
        row = c.execute(
            "SELECT COUNT(*), MAX(seq) FROM events WHERE profile=? AND job_id=?",
            (self.name, job_id),
        ).fetchone()
        count, last_seq = row
        last_id = None
        if count:
            last_id = c.execute(
                "SELECT event_id FROM events WHERE profile=? AND job_id=? AND seq=?",
                (self.name, job_id, last_seq),
            ).fetchone()[0]
        mode_row = c.execute(
            "SELECT mode FROM follow WHERE profile=? AND job_id=?", (self.name, job_id)
        ).fetchone()
        return FollowCursor(count=count, last_id=last_id, mode=mode_row[0] if mode_row else None)

    def follow_cursor(self, job_id: str) -> FollowCursor:
        return self.cache._run(lambda c: self._cursor(c, job_id))

    def events(self, job_id: str, limit: int | None = None) -> list[JobEvent]:
        """Cached events of a job in order (the first ``limit`` if given)."""
        rows = self.cache._run(
            lambda c: c.execute(
                "SELECT json FROM events WHERE profile=? AND job_id=? ORDER BY seq LIMIT ?",
                (self.name, job_id, -1 if limit is None else limit),
            ).fetchall()
        )
        return [JobEvent.from_api(json.loads(r[0])) for r in rows]

    # -- files and models ------------------------------------------------------------------------
    def put_files(self, files: Iterable[FileObject], *, complete: bool = False) -> None:
        rows = [(self.name, f.id, f.created_at, json.dumps(dict(f.raw))) for f in files]

        def write(c: sqlite3.Connection) -> None:
            if complete:
                c.execute("DELETE FROM files WHERE profile=?", (self.name,))
            c.executemany(
                "INSERT OR REPLACE INTO files (profile, id, created_at, json) VALUES (?,?,?,?)",
                rows,
            )

        self.cache._run(write, write=True)

    def list_files(self) -> list[FileObject]:
        rows = self.cache._run(
            lambda c: c.execute(
                "SELECT json FROM files WHERE profile=? ORDER BY created_at DESC, rowid DESC",
                (self.name,),
            ).fetchall()
        )
        return [FileObject.from_api(json.loads(r[0])) for r in rows]

    def remove_file(self, file_id: str) -> None:
        self.cache._run(
            lambda c: c.execute("DELETE FROM files WHERE profile=? AND id=?", (self.name, file_id)),
            write=True,
        )

    def put_models(self, models: Iterable[Model], *, complete: bool = False) -> None:
        rows = [(self.name, m.id, m.created, json.dumps(dict(m.raw))) for m in models]

        def write(c: sqlite3.Connection) -> None:
            if complete:
                c.execute("DELETE FROM models WHERE profile=?", (self.name,))
            c.executemany(
                "INSERT OR REPLACE INTO models (profile, id, created, json) VALUES (?,?,?,?)",
                rows,
            )

        self.cache._run(write, write=True)

    def list_models(self) -> list[Model]:
        rows = self.cache._run(
            lambda c: c.execute(
                "SELECT json FROM models WHERE profile=? ORDER BY id", (self.name,)
            ).fetchall()
        )
        return [Model.from_api(json.loads(r[0])) for r in rows]

    def remove_model(self, model_id: str) -> None:
        self.cache._run(
            lambda c: c.execute(
                "DELETE FROM models WHERE profile=? AND id=?", (self.name, model_id)
            ),
            write=True,
        )

    # -- results ---------------------------------------------------------------------------------
    def put_results(self, job_id: str, rows: Sequence[ResultRow]) -> None:
        data = [(self.name, job_id, i, json.dumps(r.to_dict())) for i, r in enumerate(rows)]

        def write(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM results WHERE profile=? AND job_id=?", (self.name, job_id))
            c.executemany("INSERT INTO results (profile, job_id, idx, json) VALUES (?,?,?,?)", data)

        self.cache._run(write, write=True)

    def results(self, job_id: str) -> list[ResultRow] | None:
        """Cached results rows of a job, or None if none were cached."""
        rows = self.cache._run(
            lambda c: c.execute(
                "SELECT json FROM results WHERE profile=? AND job_id=? ORDER BY idx",
                (self.name, job_id),
            ).fetchall()
        )
        return [ResultRow(json.loads(r[0])) for r in rows] if rows else None


# -- best-effort reads for the TUI --------------------------------------------------------------
def read_now(read: Callable[..., T], *args: Any, default: Any = None, **kwargs: Any) -> T | Any:
    """``read(*args, **kwargs)``, or ``default`` when the cache cannot answer.

    The TUI's reads are best effort: a damaged, busy or closed cache costs the cached view,
    never a screen (the client treats its writes the same way).
    """
    try:
        return read(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - best effort by design
        log.warning("cache read %s failed: %s", getattr(read, "__name__", read), exc)
        return default


async def read_off_thread(
    read: Callable[..., T], *args: Any, default: Any = None, **kwargs: Any
) -> T | Any:
    """:func:`read_now` in a worker thread: the UI thread never waits on the disk."""
    return await asyncio.to_thread(read_now, read, *args, default=default, **kwargs)
