"""The normalised object model over both dialects (ftui/types.py), results and SSE parsing."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from ftui.client import APIConnectionError, StreamError, parse_results_csv
from ftui.client.transport import iter_sse
from ftui.types import Completion, Job, JobEvent, ResultRow


def test_legacy_and_current_jobs_normalise_to_one_shape():
    legacy = Job.from_api(
        {
            "id": "ft-1",
            "object": "fine-tune",
            "model": "curie",
            "created_at": 10,
            "updated_at": 20,
            "status": "cancelled",
            "fine_tuned_model": None,
            "hyperparams": {"n_epochs": 4, "prompt_loss_weight": 0.01, "batch_size": None},
            "training_files": [{"id": "file-t", "filename": "t.jsonl", "bytes": 5}],
            "validation_files": [{"id": "file-v", "filename": "v.jsonl", "bytes": 3}],
            "result_files": [],
            "events": [{"object": "fine-tune-event", "created_at": 10, "message": "Created"}],
        }
    )
    current = Job.from_api(
        {
            "id": "ftjob-1",
            "object": "fine_tuning.job",
            "model": "babbage-002",
            "created_at": 10,
            "finished_at": 30,
            "status": "failed",
            "error": {"code": "server_restarted", "message": "stopped", "param": None},
            "training_file": "file-t",
            "validation_file": None,
            "result_files": ["file-r"],
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
            "hyperparameters": None,
            "user_provided_suffix": "mine",
            "seed": 3,
            "trained_tokens": 99,
        }
    )
    assert (legacy.dialect, legacy.state, legacy.is_terminal) == ("legacy", "cancelled", True)
    assert (legacy.training_file, legacy.validation_file) == ("file-t", "file-v")
    assert legacy.files["file-v"].bytes == 3
    assert legacy.finished_at == 20 and legacy.events[0].id is None
    assert legacy.hyperparameters["prompt_loss_weight"] == 0.01
    assert (current.dialect, current.state, current.error.code) == (
        "current",
        "failed",
        "server_restarted",
    )
    assert current.result_files == ("file-r",) and current.hyperparameters == {"n_epochs": 2}
    assert (current.suffix, current.seed, current.trained_tokens) == ("mine", 3, 99)
    # The normalised dict is JSON-ready and the same shape for both dialects.
    assert set(json.loads(json.dumps(legacy.to_dict()))) == set(current.to_dict())
    assert "raw" not in legacy.to_dict()


def test_status_vocabularies_map_to_states():
    def state(dialect_object: str, status: str) -> str:
        base = {"id": "x", "status": status, "object": dialect_object}
        return Job.from_api(base).state

    assert state("fine-tune", "pending") == "pending"
    assert state("fine_tuning.job", "validating_files") == "pending"
    assert state("fine_tuning.job", "queued") == "pending"
    assert state("fine_tuning.job", "running") == "running"
    assert state("fine_tuning.job", "paused") == "paused"
    assert not Job.from_api({"id": "x", "status": "queued"}).is_terminal
    assert Job.from_api({"id": "x", "status": "succeeded"}).succeeded


def test_empty_current_error_object_is_no_error():
    job = Job.from_api({"id": "x", "object": "fine_tuning.job", "status": "running", "error": {}})
    assert job.error is None
    nulls = {"code": None, "message": None, "param": None}
    assert Job.from_api({"id": "x", "status": "running", "error": nulls}).error is None


def test_events_and_completions():
    e = JobEvent.from_api(
        {
            "object": "fine_tuning.job.event",
            "id": "ftevent-1",
            "created_at": 5,
            "level": "warn",
            "message": "Step 1/2: training loss=0.5",
            "type": "metrics",
            "data": {"step": 1, "train_loss": 0.5},
        }
    )
    assert (e.id, e.level, e.type, e.data["train_loss"]) == ("ftevent-1", "warn", "metrics", 0.5)
    c = Completion.from_api(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"text": " b", "index": 1, "logprobs": None, "finish_reason": "length"},
                {
                    "text": " a",
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": {
                        "tokens": [" a"],
                        "token_logprobs": [-0.1],
                        "top_logprobs": [{" a": -0.1, " b": -2.3}],
                        "text_offset": [0],
                    },
                },
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    assert [ch.index for ch in c.choices] == [0, 1] and c.text == " a"
    assert c.choices[0].logprobs.top_logprobs[0][" b"] == -2.3
    assert c.usage.total_tokens == 5


LEGACY_CSV = (
    "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,"
    "training_token_accuracy,validation_loss,classification/f1.0\n"
    "1,13,1,6.14,0.0,0.25,,\n"
    "2,26,2,5.5,1.0,1.0,4.2,0.75\n"
)


def test_results_rows_by_column_name():
    rows = parse_results_csv(LEGACY_CSV.encode())
    assert [r.step for r in rows] == [1, 2]
    assert rows[0]["training_loss"] == 6.14 and rows[0]["validation_loss"] is None
    assert rows[1]["classification/f1.0"] == 0.75
    assert isinstance(rows[0]["elapsed_tokens"], int)
    assert rows[1].to_dict() == dict(rows[1]) and isinstance(rows[1], ResultRow)


def test_results_wrapped_in_base64_are_unwrapped():
    """The current hosted API returned results CSVs base64-encoded (see the API reference)."""
    wrapped = base64.b64encode(LEGACY_CSV.encode())
    assert [dict(r) for r in parse_results_csv(wrapped)] == [
        dict(r) for r in parse_results_csv(LEGACY_CSV)
    ]
    assert parse_results_csv(b"") == []


def sse_response(*chunks: bytes) -> httpx.Response:
    async def body():
        for chunk in chunks:
            yield chunk

    return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})


async def read_sse(response: httpx.Response) -> list:
    return [
        obj async for obj in iter_sse(response, "test stream", lambda t: t.replace("SECRET", "*"))
    ]


async def test_the_sse_reader_joins_split_lines_and_stops_at_done():
    """One reader serves follow and streamed completions: lines may arrive in any pieces."""
    response = sse_response(
        b': keep-alive\n\ndata: {"a"', b': 1}\r\n\ndata:{"b": 2}\n', b"\ndata: [DONE]\n\n", b"x"
    )
    assert await read_sse(response) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("chunks", "error", "message"),
    [
        ((b'data: {"a": 1}\n\n',), APIConnectionError, "test stream ended without [DONE]"),
        ((b"data: {oops\n\n",), StreamError, "test stream: a malformed event: '{oops'"),
        (
            (b'data: {"error": {"message": "bad SECRET", "type": "server_error"}}\n\n',),
            StreamError,
            "bad * (error while streaming)",
        ),
    ],
)
async def test_the_sse_reader_names_what_went_wrong(chunks, error, message):
    with pytest.raises(error) as info:
        await read_sse(sse_response(*chunks))
    assert str(info.value) == message
