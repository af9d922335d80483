"""``JOB_DIR/progress.jsonl``: the training process appends JSON lines, the runner reads them.

The writer appends each line with one ``write`` and takes back a line the disk had no room for,
so the file holds whole lines only. A line can still be cut short by a crash of the machine;
it is then the last one. The reader uses newline-terminated lines only, drops a cut last line
before a job's next run appends after it, and skips (with a warning) any line that is not a JSON
object, such as one an older version formed by joining a cut line with the next run's first.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

from ftui.server.diskio import open_private

log = logging.getLogger("ftui.server.training.progress")

FILE_NAME = "progress.jsonl"


class Progress:
    """The training process's end: appends whole JSON lines, one ``write`` each."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._fd = open_private(Path(path), os.O_WRONLY | os.O_APPEND)

    def emit(self, type_: str, **fields: Any) -> None:
        self.append({"type": type_, **fields})

    def append(self, message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        start = os.lseek(self._fd, 0, os.SEEK_END)  # the only writer: the line starts here
        written = os.write(self._fd, line)
        if written < len(line):  # the disk filled mid-line: leave no half line behind
            os.ftruncate(self._fd, start)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)

    def close(self) -> None:
        os.close(self._fd)


def parse(line: bytes, where: str) -> dict[str, Any] | None:
    """A complete line as a message, or None (with a warning) if it is not one."""
    try:
        message = json.loads(line)
    except ValueError as exc:
        message = exc
    if not isinstance(message, dict):
        log.warning("%s: skipped a line that is not a progress message: %.120r", where, line)
        return None
    return message


def drop_torn_tail(path: Path) -> int:
    """Cut an unterminated last line, so the next run's lines start on a line of their own;
    returns how many bytes were dropped."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        keep = size
        while keep > 0:
            start = max(0, keep - 65536)
            chunk = os.pread(fd, keep - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        if keep == size:
            return 0
        os.ftruncate(fd, keep)
    finally:
        os.close(fd)
    log.warning("%s ended with an incomplete line (%d bytes); dropped it", path, size - keep)
    return size - keep


def read_complete(path: Path, offset: int) -> list[tuple[int, dict[str, Any] | None]]:
    """The complete lines after ``offset``: (offset after the line, message or None)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return []
    out = []
    start = 0
    # Split at newlines only; whatever follows the last one is a line still being written.
    while (end := data.find(b"\n", start)) >= 0:
        line = data[start : end + 1]
        start = end + 1
        out.append((offset + start, parse(line, str(path)) if line.strip() else None))
    return out
