"""Start and stop a real `ftui serve` process for tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

READY_MARK = "ftui serve: listening on "
START_TIMEOUT = 60


def write_alias_table(data_dir: Path, aliases: dict[str, Path | str]) -> None:
    lines = ["[aliases]"] + [f'"{name}" = "{target}"' for name, target in aliases.items()]
    (data_dir / "base_models.toml").write_text("\n".join(lines) + "\n")


@dataclass
class ServerProcess:
    data_dir: Path
    api_key: str | None = None
    port: int = 0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ServerProcess:
        args = [
            sys.executable,
            "-m",
            "ftui",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.api_key:
            env["FTUI_SERVE_API_KEY"] = self.api_key
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream) -> None:
            for line in stream:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.process.stdout,), daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                self.kill()
                raise RuntimeError("ftui serve did not start:\n" + "".join(self.output)) from None
            if line is None:
                raise RuntimeError("ftui serve exited:\n" + "".join(self.output))
            if line.startswith(READY_MARK):
                self.port = int(line[len(READY_MARK) :].split()[0].rsplit(":", 1)[1].split("/")[0])
                return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()
