"""The embedded server: find the running ``ftui serve`` of this user, or start one.

Everything about it lives in one directory (the user data dir unless told otherwise):
``local-server.json`` holds the running server's port and pid, ``local-server.lock`` makes two
ftui processes starting at once share one server, ``server/`` holds its data and ``server.log``
its output. The server keeps running after ftui exits, so the next start finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ftui import datadir
from ftui.config import ConfigError, data_dir

SERVE_ARGS = ("-m", "ftui", "serve")
STATE_FILE = datadir.LOCAL_SERVER_STATE
LOCK_FILE = "local-server.lock"
LOG_FILE = "server.log"
READY_MARK = "ftui serve: listening on http://127.0.0.1:"


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def recorded_url(directory: Path | None = None) -> str | None:
    """The base URL of the server last started here, if one was (it may have stopped since).

    Reads the state file only: nothing is started and nothing is asked over the network.
    """
    path = Path(directory or data_dir()) / STATE_FILE
    try:
        return _url(int(json.loads(path.read_text())["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _healthy(base_url: str) -> bool:
    # Through the client: ftui has one HTTP stack. Called from a thread, never from the loop.
    from ftui.client import is_healthy

    return asyncio.run(is_healthy(base_url))


def ensure_local_server(
    directory: Path | None = None, *, timeout: float = 90.0, python: str | None = None
) -> str:
    """Return the base URL of the embedded server, starting ``ftui serve`` if none is running.

    Blocks (it waits for a child process); async callers run it in a thread.
    """
    import fcntl

    directory = Path(directory) if directory else data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    state_path = directory / STATE_FILE
    with open(directory / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base_url = recorded_url(directory)
        if base_url is not None and _healthy(base_url):
            return base_url
        server_dir = datadir.server_data_dir(directory)
        server_dir.mkdir(parents=True, exist_ok=True)
        log_path = directory / LOG_FILE
        with open(log_path, "ab") as log:
            start = log.tell()
            proc = subprocess.Popen(
                [
                    python or sys.executable,
                    *SERVE_ARGS,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--data-dir",
                    str(server_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = _announced_port(log_path, start)
            if port is not None:
                tmp = state_path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"port": port, "pid": proc.pid}))
                os.replace(tmp, state_path)
                return _url(port)
            if proc.poll() is not None:
                raise ConfigError(
                    f"the embedded server (ftui serve) exited with status {proc.returncode}; "
                    f"is the 'local' extra installed (pip install 'ftui[local]')? "
                    f"Log {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.1)  # a child process's log line: there is nothing to await on
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        raise ConfigError(
            f"the embedded server did not start within {timeout:.0f}s; see {log_path}"
        )


def _announced_port(log_path: Path, start: int) -> int | None:
    """The port ``ftui serve`` announced in its log after offset ``start``, if it has yet."""
    with open(log_path, "rb") as fh:
        fh.seek(start)
        for line in fh.read().decode(errors="replace").splitlines():
            if line.startswith(READY_MARK):
                return int(line[len(READY_MARK) :].split("/", 1)[0])
    return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
