"""Completions (legacy and chat) while other things happen: client disconnects, and the API
during a long generation.

These run the real app (``create_app``) under uvicorn on a real socket, but in this process, so
that the test can see the generation jobs themselves: whether one is still running, whether it
was cancelled, and how far it got. A model with a long context (the tiny model with its limit
raised) makes a generation that would run for seconds if nothing stopped it.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ftui.server.http.api import ServerConfig, create_app
from ftui.server.serving.completions import CompletionService, Generation
from tests.conftest import prepare_data_dir
from tests.serverproc import write_alias_table

LONG_CONTEXT = 4096
EOS = "2"  # <|im_end|> in the tiny tokenizer: banned so that generations run to max_tokens
LONG = {
    "model": "long",
    "prompt": "Hi",
    "max_tokens": LONG_CONTEXT - 16,
    "temperature": 0,
    "logit_bias": {EOS: -100},
}


@dataclass
class Live:
    base_url: str
    address: tuple[str, int]
    service: CompletionService
    jobs: list[Generation]
    submitted: threading.Event


def _long_model(tiny: Path, target: Path) -> Path:
    shutil.copytree(tiny, target)
    limits = {"config.json": "max_position_embeddings", "tokenizer_config.json": "model_max_length"}
    for name, key in limits.items():
        path = target / name
        data = json.loads(path.read_text())
        data[key] = LONG_CONTEXT
        path.write_text(json.dumps(data))
    return target


@pytest.fixture
def live(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> Iterator[Live]:
    import uvicorn

    data_dir = prepare_data_dir(tmp_path / "data", tiny_model_dir)
    long_dir = _long_model(tiny_model_dir, tmp_path / "long")
    write_alias_table(data_dir, {"tiny": tiny_model_dir, "long": long_dir})
    app = create_app(ServerConfig(data_dir=data_dir))
    service: CompletionService = app.state.server.completions
    jobs: list[Generation] = []
    submitted = threading.Event()
    original = service._submit

    def spy(job: Generation, work):
        jobs.append(job)
        future = original(job, work)
        submitted.set()
        return future

    monkeypatch.setattr(service, "_submit", spy)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    host, port = sock.getsockname()
    try:
        yield Live(f"http://{host}:{port}/v1", (host, port), service, jobs, submitted)
    finally:
        for job in jobs:
            job.cancel.set()
        server.should_exit = True
        thread.join(30)
        sock.close()


def _read_chunks(lines: Iterator[str], count: int) -> list[dict]:
    chunks = []
    for line in lines:
        if line.startswith("data: "):
            chunks.append(json.loads(line[6:]))
            if len(chunks) == count:
                return chunks
    raise AssertionError("the stream ended early")


def test_stream_disconnect_stops_generation(live: Live):
    with (
        httpx.Client(base_url=live.base_url, timeout=60) as client,
        client.stream("POST", "/completions", json={**LONG, "stream": True}) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()  # abandoning this iterator would close the connection
        chunks = _read_chunks(lines, 3)
        assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
        (job,) = live.jobs
        assert not job.done.is_set()
    # Closing the response mid-body closed the connection.
    assert job.done.wait(30), "generation went on after the client left"
    assert job.cancelled
    # It stopped right away: far fewer tokens than asked for (all of them take seconds).
    assert 3 <= job.released < LONG["max_tokens"] // 4
    assert not live.service.active


def test_chat_stream_disconnect_stops_generation(live: Live):
    chat = {k: v for k, v in LONG.items() if k != "prompt"}
    chat["messages"] = [{"role": "user", "content": "Hi"}]
    chat["max_completion_tokens"] = chat.pop("max_tokens")
    with (
        httpx.Client(base_url=live.base_url, timeout=60) as client,
        client.stream("POST", "/chat/completions", json={**chat, "stream": True}) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        chunks = _read_chunks(lines, 4)  # the role delta, then content
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        (job,) = live.jobs
        assert not job.done.is_set()
    assert job.done.wait(30), "generation went on after the client left"
    assert job.cancelled
    assert job.released < chat["max_completion_tokens"] // 4
    assert not live.service.active


def test_non_streamed_disconnect_stops_generation(live: Live):
    body = json.dumps(LONG).encode()
    with socket.create_connection(live.address, timeout=30) as raw:
        raw.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert live.submitted.wait(30)
        (job,) = live.jobs
        assert not job.done.is_set()
    assert job.done.wait(30), "generation went on after the client left"
    assert job.cancelled
    assert job.released < LONG["max_tokens"] // 4


def test_api_answers_while_a_long_generation_runs(live: Live):
    with (
        httpx.Client(base_url=live.base_url, timeout=60) as client,
        client.stream("POST", "/completions", json={**LONG, "stream": True}) as response,
    ):
        lines = response.iter_lines()  # abandoning this iterator would close the connection
        _read_chunks(lines, 1)
        (job,) = live.jobs
        models = client.get("/models")
        assert models.status_code == 200
        assert {"tiny", "long"} <= {m["id"] for m in models.json()["data"]}
        short = client.post(
            "/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 3, "seed": 1}
        )
        assert short.status_code == 200 and short.json()["usage"]["completion_tokens"] == 3
        bad = client.post("/completions", json={"model": "long", "prompt": "Hi", "n": 0})
        assert bad.status_code == 400
        # All of that was answered while the long generation was still going.
        assert not job.done.is_set()
        assert job.released < LONG["max_tokens"]
        assert _read_chunks(lines, 1)  # and the stream is still being served
    assert job.done.wait(30) and job.cancelled
