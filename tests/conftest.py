"""Shared fixtures: a tiny real model built offline, and real `ftui serve` processes."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess, write_alias_table
from tests.tiny_model import build_tiny_model, make_sentiment_examples

TINY_ALIASES = ("ada", "babbage", "tiny")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny")


def prepare_data_dir(data_dir: Path, tiny_model_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    write_alias_table(data_dir, {name: tiny_model_dir for name in TINY_ALIASES})
    return data_dir


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[ServerProcess]:
    data_dir = prepare_data_dir(tmp_path_factory.mktemp("server-data"), tiny_model_dir)
    proc = ServerProcess(data_dir, extra_args=("--threads", "1")).start()
    yield proc
    proc.stop()


@pytest.fixture
def server_factory(tmp_path: Path, tiny_model_dir: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(api_key=None, data_dir=None, port=None, extra_args=()) -> ServerProcess:
        directory = prepare_data_dir(
            Path(data_dir or tmp_path / f"data{len(started)}"), tiny_model_dir
        )
        proc = ServerProcess(
            directory, api_key=api_key, port=port or 0, extra_args=("--threads", "1", *extra_args)
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.kill()


def write_training_file(path: Path, n: int = 40, seed: int = 0) -> Path:
    """A small JSONL of sentiment examples the tiny model can learn."""
    with open(path, "w") as fh:
        for example in make_sentiment_examples(n, seed):
            fh.write(json.dumps(example) + "\n")
    return path


@pytest.fixture
def make_training_file(tmp_path: Path):
    def make(n: int = 40, seed: int = 0, name: str = "train.jsonl") -> Path:
        return write_training_file(tmp_path / name, n, seed)

    return make


_TRAINED: dict[str, tuple[str, str]] = {}


@pytest.fixture
def trained_model(server) -> tuple[str, str]:
    """(fine-tuned model, job id) of a tiny model trained on the sentiment set by the session's
    server (seconds). Trained once per server, again only if a test deleted the model."""
    from urllib.parse import quote

    import httpx

    from tests.apihelpers import TRAIN_FAST, follow, upload

    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        known = _TRAINED.get(server.base_url)
        if known and c.get(f"/models/{quote(known[0], safe='')}").status_code == 200:
            return known
        with tempfile.TemporaryDirectory() as tmp:
            f = upload(c, write_training_file(Path(tmp) / "train.jsonl", 40))
        job = c.post(
            "/fine-tunes", json={"training_file": f["id"], "model": "tiny", **TRAIN_FAST}
        ).json()
        follow(c, job["id"])
        done = c.get(f"/fine-tunes/{job['id']}").json()
        assert done["status"] == "succeeded", done
        _TRAINED[server.base_url] = (done["fine_tuned_model"], job["id"])
        return _TRAINED[server.base_url]


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC (screens show local times; snapshots must not depend on the zone)."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
