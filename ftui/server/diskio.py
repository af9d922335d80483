"""Writing into the data dir: private modes, whole files, and plain words for a disk that says no.

Shared by the store, the runner, the API and the training process, so a full or read-only disk is
described the same way wherever it is noticed (an upload, a job that cannot start, a checkpoint).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ftui.server.disk")

# The data dir holds uploaded training data and weights: only its owner may read it, whatever
# the umask (a umask can only remove bits, so these are the modes things are created with).
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

RESERVE_BYTES = 1 << 20
MIN_FREE_BYTES = 1 << 20  # below this a job would fail at its first checkpoint: wait instead

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY = frozenset({errno.EROFS})
_DENIED = frozenset({errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class StorageProblem:
    kind: str  # "full", "read_only" or "denied"
    detail: str

    @property
    def message(self) -> str:
        if self.kind == "full":
            return f"The server's disk is full ({self.detail})"
        if self.kind == "read_only":
            return f"The server's data directory is read-only ({self.detail})"
        return f"The server is not allowed to write to its data directory ({self.detail})"

    @property
    def remedy(self) -> str:
        return {
            "full": "Free some space",
            "read_only": "Make the data directory writable",
        }.get(self.kind, "Let the server's user write to its data directory")

    @property
    def job_failure(self) -> str:
        """Why a running job failed, and what to do about it."""
        return f"{self.message}; training stopped. {self.remedy}, then create the job again."


class StorageUnavailable(Exception):
    """The data dir cannot take writes now; what waits for it (a queued job) can retry later."""

    def __init__(self, problem: StorageProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def storage_problem(exc: BaseException | None) -> StorageProblem | None:
    """What a failed write says about the disk, if anything: follows causes and contexts, since
    a disk error often surfaces wrapped (a torch save, an SQLite commit)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, StorageUnavailable):
            return exc.problem
        if isinstance(exc, OSError) and exc.errno is not None:
            detail = exc.strerror or str(exc)
            if exc.filename:
                detail += f": {exc.filename}"
            for kind, numbers in (("full", _FULL), ("read_only", _READ_ONLY), ("denied", _DENIED)):
                if exc.errno in numbers:
                    return StorageProblem(kind, detail)
        name = getattr(exc, "sqlite_errorname", "") or ""  # sqlite3.Error, without importing it
        if name.startswith("SQLITE_FULL"):
            return StorageProblem("full", str(exc))
        if name.startswith("SQLITE_READONLY"):
            return StorageProblem("read_only", str(exc))
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def private_dir(path: Path) -> Path:
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def open_private(path: Path, flags: int) -> int:
    """os.open with O_CREAT and the private file mode."""
    return os.open(path, flags | os.O_CREAT, PRIVATE_FILE)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (temp file, fsync, rename), readable by the owner only.

    A failed write (a full disk) removes its temp file and leaves the old content in place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = open_private(tmp, os.O_WRONLY | os.O_EXCL)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # read-only: there is no temp file to remove either
            tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SpaceReserve:
    """A file of RESERVE_BYTES held on the data dir's disk: given up when the disk is full so
    that how a job ended can still be recorded, taken again once there is room."""

    path: Path

    def ensure(self) -> StorageProblem | None:
        """Take the space if it is not held; a problem if the disk has no room for it."""
        with contextlib.suppress(OSError):
            if self.path.stat().st_size >= RESERVE_BYTES:
                return None
        try:
            fd = open_private(self.path, os.O_WRONLY)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            problem = storage_problem(exc)
            if problem is None:  # a file system without the room to spare: carry on without
                log.warning("could not reserve space at %s: %s", self.path, exc)
            return problem
        return None

    def release(self) -> bool:
        """Free the space for a write that must not fail; False if none was held."""
        try:
            self.path.unlink()
        except OSError:
            return False
        log.warning("the disk is full: released the reserved space %s", self.path)
        return True

    def check(self) -> StorageProblem | None:
        """Whether the directory holding the reserve can take new files: read-only, no room for
        the reserve, or less than MIN_FREE_BYTES free."""
        directory = self.path.parent
        try:
            if os.statvfs(directory).f_flag & os.ST_RDONLY:
                return StorageProblem("read_only", f"{directory} is mounted read-only")
        except OSError as exc:
            return storage_problem(exc)
        problem = self.ensure()
        if problem is not None:
            return problem
        st = os.statvfs(directory)
        if st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
            return StorageProblem("full", f"less than 1 MiB free in {directory}")
        return None
