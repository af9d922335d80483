"""Small HTTP helpers the server tests share (plain httpx against the real server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx

TRAIN_FAST = {"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 3.3}


def upload(client: httpx.Client, path: Path, purpose: str = "fine-tune", filename=None) -> dict:
    with open(path, "rb") as fh:
        response = client.post(
            "/files", data={"purpose": purpose}, files={"file": (filename or path.name, fh)}
        )
    assert response.status_code == 200, response.text
    return response.json()


def sse_lines(client: httpx.Client, job_id: str) -> Iterator[str]:
    """The `data:` payloads of the legacy event stream, `[DONE]` included, until the body ends."""
    with client.stream(
        "GET",
        f"/fine-tunes/{job_id}/events",
        params={"stream": "true"},
        timeout=httpx.Timeout(10, read=120),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield line[len("data: ") :]


def follow(client: httpx.Client, job_id: str) -> list[dict]:
    """Every event of a job, by the SSE stream, once it is terminal; checks the [DONE] framing."""
    payloads = list(sse_lines(client, job_id))
    assert payloads[-1] == "[DONE]", payloads[-3:]
    assert "[DONE]" not in payloads[:-1]
    return [json.loads(p) for p in payloads[:-1]]


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]
