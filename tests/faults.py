"""Real faults for server tests: a small tmpfs that fills up, a directory made read-only, and
helpers to poll the real server and its training processes with deadlines."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 60, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _mount(*args: str, busy_timeout: float = 0) -> None:
    # CI runs these tests as root: a mount that is refused is a failure to see, not a skip.
    deadline = time.monotonic() + busy_timeout
    while True:
        result = subprocess.run(["mount", *args], capture_output=True, text=True)
        if result.returncode == 0:
            return
        # A remount to read-only is refused while a file is being written through the mount.
        if "busy" not in result.stderr or time.monotonic() > deadline:
            raise AssertionError(
                f"mount {' '.join(args)} failed (these tests need root): {result.stderr.strip()}"
            )


def _umount(path: Path) -> None:
    """Unmount, waiting out a file being written through the mount; lazily as a last resort, so
    no mount outlives its test."""
    deadline = time.monotonic() + 30
    while subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(path)], check=True)
            return
        time.sleep(0.1)  # retry pacing, not synchronisation


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` read-only for new opens (files already open stay writable), then undo."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path), busy_timeout=30)
        yield
    finally:
        _umount(path)


def fill(directory: Path) -> Path:
    """Write a file into ``directory`` until its file system has no room left."""
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as fh:  # appends: fills again what was freed since
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            with contextlib.suppress(OSError):
                while fh.write(block):
                    pass
    with contextlib.suppress(OSError), open(directory / "probe", "wb", buffering=0) as fh:
        fh.write(b"\0" * 4096)  # tmpfs takes whole pages: this must fail now
        raise AssertionError(f"{directory} is not full")
    return filler


def training_pids(job_id: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ftui.server.training.train" in cmdline and job_id.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def job(client: httpx.Client, job_id: str) -> dict:
    path = f"/fine-tunes/{job_id}" if job_id.startswith("ft-") else f"/fine_tuning/jobs/{job_id}"
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def messages(client: httpx.Client, job_id: str) -> list[str]:
    """A job's event messages, oldest first, in either dialect."""
    if job_id.startswith("ft-"):
        data = client.get(f"/fine-tunes/{job_id}/events").json()["data"]
        return [e["message"] for e in data]
    data = client.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 10000}).json()
    return [e["message"] for e in reversed(data["data"])]


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 120):
    return wait_for(
        lambda: (j := job(client, job_id))["status"] in statuses and j,
        timeout,
        f"job {job_id} to be {' or '.join(sorted(statuses))}",
    )


def no_orphans(client: httpx.Client) -> None:
    """No job is `running` without a training process."""
    for j in client.get("/fine_tuning/jobs", params={"limit": 1000}).json()["data"]:
        if j["status"] == "running":
            assert training_pids(j["id"]), f"{j['id']} is running without a process"


def tree_modes(root: Path) -> dict[str, int]:
    """Permission bits of everything under ``root`` (and ``root``), by relative path."""
    out = {".": os.stat(root).st_mode & 0o777}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            out[str(path.relative_to(root))] = os.lstat(path).st_mode & 0o777
    return out
