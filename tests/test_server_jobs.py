"""Fine-tuning jobs end to end over the real `ftui serve`, training a tiny real model."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.apihelpers import TRAIN_FAST, error_of, follow, sse_lines, upload

LEGACY_COLUMNS = [
    "step",
    "elapsed_tokens",
    "elapsed_examples",
    "training_loss",
    "training_sequence_accuracy",
    "training_token_accuracy",
]


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def training_file(client, make_training_file) -> dict:
    return upload(client, make_training_file(n=40))


def _messages(events: list[dict]) -> list[str]:
    return [e["message"] for e in events]


def _results(client: httpx.Client, file_id: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(client.get(f"/files/{file_id}/content").text)))


def test_legacy_job_end_to_end(client, server, training_file):
    created = client.post(
        "/fine-tunes",
        json={
            "training_file": training_file["id"],
            "model": "ada",
            "suffix": "My Model!",
            "validation_file": None,
            **TRAIN_FAST,
        },
    )
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["object"] == "fine-tune"
    assert job["id"].startswith("ft-")
    assert job["status"] == "pending"
    assert job["fine_tuned_model"] is None
    assert job["events"][0]["message"] == f"Created fine-tune: {job['id']}"
    assert job["training_files"][0]["id"] == training_file["id"]
    assert job["validation_files"] == [] and job["result_files"] == []
    assert job["hyperparams"] == {
        "batch_size": 8,
        "learning_rate_multiplier": 3.3,
        "n_epochs": 2,
        "prompt_loss_weight": 0.01,
    }

    events = follow(client, job["id"])
    messages = _messages(events)
    assert messages[:4] == [
        f"Created fine-tune: {job['id']}",
        "Fine-tune costs $0.00",
        "Fine-tune enqueued. Queue number: 0",
        "Fine-tune started",
    ]
    assert messages[4:6] == ["Completed epoch 1/2", "Completed epoch 2/2"]
    assert re.fullmatch(r"Uploaded model: ada:ft-personal:my-model-\d{4}(-\d\d){5}", messages[6])
    assert re.fullmatch(r"Uploaded result file: file-\w+", messages[7])
    assert messages[8:] == ["Fine-tune succeeded"]
    assert all(
        e["object"] == "fine-tune-event" and isinstance(e["created_at"], int) for e in events
    )

    done = client.get(f"/fine-tunes/{job['id']}").json()
    assert done["status"] == "succeeded"
    model = done["fine_tuned_model"]
    assert messages[6] == f"Uploaded model: {model}"
    # The name's timestamp is the UTC time of the "Uploaded model" event.
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(events[6]["created_at"]))
    assert model.endswith(stamp)
    assert done["hyperparams"]["n_epochs"] == 2

    result_file = done["result_files"][0]
    assert result_file["filename"] == "compiled_results.csv"
    assert result_file["purpose"] == "fine-tune-results"
    rows = _results(client, result_file["id"])
    assert list(rows[0]) == LEGACY_COLUMNS  # no validation file, so no validation columns
    assert [int(r["step"]) for r in rows] == list(range(1, 11))  # 40 examples / 8 × 2 epochs
    assert [int(r["elapsed_examples"]) for r in rows] == [8 * k for k in range(1, 11)]
    tokens = [int(r["elapsed_tokens"]) for r in rows]
    assert tokens == sorted(tokens) and tokens[0] > 0
    for r in rows:
        assert float(r["training_loss"]) > 0
        assert 0 <= float(r["training_token_accuracy"]) <= 1
        assert 0 <= float(r["training_sequence_accuracy"]) <= 1

    # Listed, with weights on disk, until deleted.
    listed = {m["id"]: m for m in client.get("/models").json()["data"]}
    assert listed[model]["owned_by"] == "org-personal"
    weights = [p for p in (server.data_dir / "models").iterdir() if (p / "config.json").exists()]
    assert any((p / "model.safetensors").exists() for p in weights)
    encoded = model.replace(":", "%3A")
    assert client.get(f"/models/{encoded}").json()["id"] == model
    before = set((server.data_dir / "models").iterdir())
    assert client.delete(f"/models/{encoded}").json() == {
        "id": model,
        "object": "model",
        "deleted": True,
    }
    assert model not in {m["id"] for m in client.get("/models").json()["data"]}
    assert len(before - set((server.data_dir / "models").iterdir())) == 1
    error_of(client.get(f"/models/{encoded}"), 404)

    # A finished job's stream replays its whole history, then [DONE], then ends.
    assert follow(client, job["id"]) == events


def test_current_job_end_to_end(client, server, training_file):
    # ftui's micro_batch_size and max_grad_norm ride along with the standard hyperparameters.
    hyperparameters = {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": "auto"}
    hyperparameters |= {"micro_batch_size": 3, "max_grad_norm": 0.5}
    created = client.post(
        "/fine_tuning/jobs",
        json={
            "model": "babbage",
            "training_file": training_file["id"],
            "suffix": "sent_v1",
            "seed": 7,
            "metadata": {"team": "nlp"},
            "hyperparameters": hyperparameters,
        },
    )
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["object"] == "fine_tuning.job"
    assert job["id"].startswith("ftjob-")
    assert job["status"] == "validating_files"
    assert job["hyperparameters"] == {
        "n_epochs": 1,
        "batch_size": 8,
        "learning_rate_multiplier": "auto",
    }
    assert job["seed"] == 7 and job["metadata"] == {"team": "nlp"}
    assert job["error"] is None and job["result_files"] == []

    follow(client, job["id"])  # one store: the legacy stream also follows current jobs
    done = client.get(f"/fine_tuning/jobs/{job['id']}").json()
    assert done["status"] == "succeeded"
    assert re.fullmatch(r"ft:babbage:personal:sent_v1:[a-z0-9]{8}", done["fine_tuned_model"])
    assert done["hyperparameters"] == {
        "n_epochs": 1,
        "batch_size": 8,
        "learning_rate_multiplier": 0.1,
    }
    assert done["trained_tokens"] > 0
    assert isinstance(done["finished_at"], int)
    # The training process got them: it reports what it trained with.
    first = (server.data_dir / "jobs" / job["id"] / "progress.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["micro_batch_size"] == 3 and json.loads(first)["max_grad_norm"] == 0.5
    assert all(isinstance(f, str) for f in done["result_files"])

    events = client.get(f"/fine_tuning/jobs/{job['id']}/events", params={"limit": 100}).json()
    data = events["data"]
    assert events["has_more"] is False
    assert [e["created_at"] for e in data] == sorted((e["created_at"] for e in data), reverse=True)
    oldest_first = _messages(list(reversed(data)))
    assert oldest_first[:4] == [
        f"Created fine-tuning job: {job['id']}",
        f"Validating training file: {training_file['id']}",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
    ]
    assert oldest_first[-2:] == [
        f"New fine-tuned model created: {done['fine_tuned_model']}",
        "The job has successfully completed",
    ]
    metrics = [e for e in reversed(data) if e["type"] == "metrics"]
    assert [m["data"]["step"] for m in metrics] == [1, 2, 3, 4, 5]
    assert metrics[0]["message"].startswith("Step 1/5: training loss=")
    assert set(metrics[0]["data"]) >= {
        "step",
        "train_loss",
        "train_mean_token_accuracy",
        "total_steps",
    }
    assert all(e["id"].startswith("ftevent-") for e in data)

    # Cursor pagination walks the same events, page by page, without gaps or repeats.
    walked, after = [], None
    while True:
        query = {"limit": 3, **({"after": after} if after else {})}
        page = client.get(f"/fine_tuning/jobs/{job['id']}/events", params=query).json()
        walked += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert [e["id"] for e in walked] == [e["id"] for e in data]

    rows = _results(client, done["result_files"][0])
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    ]
    assert len(rows) == 5 and rows[0]["valid_loss"] == ""


def test_both_dialects_are_views_of_one_store(client, training_file):
    legacy = client.post(
        "/fine-tunes", json={"training_file": training_file["id"], "model": "ada", "n_epochs": 1}
    ).json()
    as_current = client.get(f"/fine_tuning/jobs/{legacy['id']}").json()
    assert as_current["object"] == "fine_tuning.job"
    assert as_current["training_file"] == training_file["id"]
    assert legacy["id"] in [
        j["id"] for j in client.get("/fine_tuning/jobs", params={"limit": 100}).json()["data"]
    ]
    follow(client, legacy["id"])
    listed = client.get("/fine-tunes").json()["data"]
    assert legacy["id"] in [j["id"] for j in listed]
    assert "events" not in listed[0]
    created = [j["created_at"] for j in listed]
    assert created == sorted(created)  # legacy list: oldest first


def test_current_job_list_pagination(client, training_file):
    ids = []
    for _ in range(3):
        job = client.post(
            "/fine_tuning/jobs",
            json={
                "model": "tiny",
                "training_file": training_file["id"],
                "hyperparameters": {"n_epochs": 1, "batch_size": 40},
            },
        ).json()
        ids.append(job["id"])
    first = client.get("/fine_tuning/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2]  # newest first
    assert first["has_more"] is True
    second = client.get(
        "/fine_tuning/jobs", params={"limit": 2, "after": first["data"][-1]["id"]}
    ).json()
    assert second["data"][0]["id"] == ids[0]
    for job_id in ids:
        follow(client, job_id)


def test_cancel_mid_training_then_queue_moves_on(client, make_training_file):
    models_before = {m["id"] for m in client.get("/models").json()["data"]}
    big = upload(client, make_training_file(n=200, name="big.jsonl"))
    small = upload(client, make_training_file(n=16, name="small.jsonl"))
    long_job = client.post(
        "/fine_tuning/jobs",
        json={
            "model": "tiny",
            "training_file": big["id"],
            "hyperparameters": {"n_epochs": 50, "batch_size": 1},
        },
    ).json()
    queued = client.post(
        "/fine-tunes",
        json={"training_file": small["id"], "model": "ada", "n_epochs": 1, "batch_size": 8},
    ).json()
    assert _messages(queued["events"])[-1] == "Fine-tune enqueued. Queue number: 0"

    # Wait, by the event stream, until the long job has really trained a step.
    for payload in sse_lines(client, long_job["id"]):
        if payload.startswith("{") and json.loads(payload)["message"].startswith("Step 1/"):
            break
    # A file an unfinished job needs cannot be deleted: the queued job would find its data gone,
    # and the running one could not resume from a checkpoint after a pause.
    for file, job in ((small, queued), (big, long_job)):
        error = error_of(client.delete(f"/files/{file['id']}"), 400)
        assert (error["code"], error["param"]) == ("file_in_use", "file_id")
        assert file["id"] in error["message"] and job["id"] in error["message"], error
        assert client.get(f"/files/{file['id']}").status_code == 200
    cancelled = client.post(f"/fine_tuning/jobs/{long_job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["fine_tuned_model"] is None
    events = client.get(f"/fine_tuning/jobs/{long_job['id']}/events").json()["data"]
    assert events[0]["message"] == "Fine tuning process stopping due to job cancellation"
    assert events[0]["level"] == "warn"
    # The stream of a cancelled job ends.
    follow(client, long_job["id"])

    messages = _messages(follow(client, queued["id"]))
    assert messages[-1] == "Fine-tune succeeded"
    # Only the queued job's model is new: the cancelled job registered none.
    models_after = {m["id"] for m in client.get("/models").json()["data"]}
    assert models_after - models_before == {
        client.get(f"/fine-tunes/{queued['id']}").json()["fine_tuned_model"]
    }
    error_of(client.post(f"/fine_tuning/jobs/{long_job['id']}/cancel"), 400)
    # Once its jobs are over, a file can go.
    for file in (small, big):
        assert client.delete(f"/files/{file['id']}").json()["deleted"] is True


def test_missing_base_model_fails_with_how_to_get_it(client, training_file):
    job = client.post(
        "/fine_tuning/jobs",
        json={"model": "no-such-base-model", "training_file": training_file["id"]},
    ).json()
    events = follow(client, job["id"])
    failed = client.get(f"/fine_tuning/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["fine_tuned_model"] is None
    assert "no-such-base-model" in failed["error"]["message"]
    assert "base_models.toml" in failed["error"]["message"]  # says how to get it
    assert events[-1]["message"].startswith("Fine-tuning job failed: ")
    assert events[-1]["level"] == "error"
    legacy_view = client.get(f"/fine-tunes/{job['id']}").json()
    assert legacy_view["status"] == "failed"


def test_fine_tuned_model_can_be_the_base(client, training_file):
    first = client.post(
        "/fine-tunes", json={"training_file": training_file["id"], "model": "ada", "n_epochs": 1}
    ).json()
    follow(client, first["id"])
    base = client.get(f"/fine-tunes/{first['id']}").json()["fine_tuned_model"]
    second = client.post(
        "/fine-tunes", json={"training_file": training_file["id"], "model": base, "n_epochs": 1}
    ).json()
    assert second["model"] == base
    follow(client, second["id"])
    done = client.get(f"/fine-tunes/{second['id']}").json()
    assert done["status"] == "succeeded"
    assert done["fine_tuned_model"].startswith("ada:ft-personal-")


@pytest.mark.parametrize(
    ("path", "body", "param", "words"),
    [
        ("/fine-tunes", {}, "training_file", "Missing required parameter"),
        ("/fine-tunes", {"training_file": "file-nope"}, "training_file", "No such File"),
        ("/fine-tunes", {"training_file": "$TF", "n_epochs": "4"}, "n_epochs", "integer"),
        ("/fine-tunes", {"training_file": "$TF", "n_epochs": 0}, "n_epochs", "between"),
        ("/fine-tunes", {"training_file": "$TF", "batch_size": 1000}, "batch_size", "between"),
        (
            "/fine-tunes",
            {"training_file": "$TF", "learning_rate_multiplier": -1},
            "learning_rate_multiplier",
            "greater than",
        ),
        (
            "/fine-tunes",
            {"training_file": "$TF", "prompt_loss_weight": "x"},
            "prompt_loss_weight",
            "number",
        ),
        ("/fine-tunes", {"training_file": "$TF", "suffix": "x" * 41}, "suffix", "40"),
        ("/fine-tunes", {"training_file": "$TF", "epochs": 3}, "epochs", "Unrecognized"),
        (
            "/fine-tunes",
            {"training_file": "$TF", "compute_classification_metrics": True},
            "validation_file",
            "validation_file",
        ),
        (
            "/fine-tunes",
            {
                "training_file": "$TF",
                "validation_file": "$TF",
                "compute_classification_metrics": True,
            },
            "compute_classification_metrics",
            "classification_n_classes",
        ),
        (
            "/fine-tunes",
            {"training_file": "$TF", "model": "ada:ft-personal-2020-01-01-00-00-00"},
            "model",
            "Invalid base model",
        ),
        ("/fine-tunes", {"training_file": "$RESULTS"}, "training_file", "purpose"),
        ("/fine_tuning/jobs", {"training_file": "$TF"}, "model", "Missing required"),
        ("/fine_tuning/jobs", {"model": "ada"}, "training_file", "Missing required"),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "hyperparameters": {"n_epochs": "many"}},
            "n_epochs",
            "integer",
        ),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "hyperparameters": {"epochs": 2}},
            "epochs",
            "Unrecognized",
        ),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "method": {"type": "dpo"}},
            "method",
            "not supported",
        ),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "metadata": {"k": 1}},
            "metadata",
            "string pairs",
        ),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "seed": -1},
            "seed",
            "between",
        ),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "suffix": ""},
            "suffix",
            "1 to 64",
        ),
        # ftui's training extensions are checked like the standard options.
        ("/fine-tunes", {"training_file": "$TF", "micro_batch_size": 0}, "micro_batch_size",
         "between 1 and 256"),
        ("/fine-tunes", {"training_file": "$TF", "max_grad_norm": -1}, "max_grad_norm",
         "at least 0.0"),
        (
            "/fine_tuning/jobs",
            {"model": "ada", "training_file": "$TF", "hyperparameters": {"micro_batch_size": 1.5}},
            "micro_batch_size",
            "integer",
        ),
    ],
)  # fmt: skip
def test_bad_job_parameters(client, training_file, tmp_path, path, body, param, words):
    results = tmp_path / "r.csv"
    results.write_text("a\n")
    results_id = upload(client, results, purpose="fine-tune-results")["id"]
    subst = {"$TF": training_file["id"], "$RESULTS": results_id}
    body = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    before = len(client.get("/fine-tunes").json()["data"])
    error = error_of(client.post(path, json=body), 400)
    assert error["param"] == param
    assert words in error["message"]
    assert len(client.get("/fine-tunes").json()["data"]) == before  # no job was created


def test_malformed_json_body(client):
    response = client.post(
        "/fine-tunes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "parse the JSON body" in error_of(response, 400)["message"]
    response = client.post("/fine_tuning/jobs", json=[1, 2])
    assert "must be an object" in error_of(response, 400)["message"]


def test_unknown_job_ids(client):
    for path in (
        "/fine-tunes/ft-nope",
        "/fine-tunes/ft-nope/events",
        "/fine_tuning/jobs/ftjob-x",
        "/fine_tuning/jobs/ftjob-x/events",
    ):
        error_of(client.get(path), 404)
    error_of(client.post("/fine-tunes/ft-nope/cancel"), 404)
    error_of(client.post("/fine_tuning/jobs/ftjob-x/cancel"), 404)
    assert "ft-nope" in error_of(client.get("/fine-tunes/ft-nope"), 404)["message"]


def test_job_resumes_after_the_server_is_killed(server_factory, make_training_file):
    """kill -9 of the server mid-job: the next start finds the job and finishes it, the results
    file has every step exactly once, and the model is listed."""
    proc = server_factory()
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        tf = upload(c, make_training_file(n=100))
        job = c.post(
            "/fine_tuning/jobs",
            json={
                "model": "tiny",
                "training_file": tf["id"],
                "hyperparameters": {"n_epochs": 4, "batch_size": 1},
            },
        ).json()
        for payload in sse_lines(c, job["id"]):
            if payload.startswith("{") and json.loads(payload)["message"].startswith("Step 150/"):
                break
    proc.kill()
    proc.start()
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        messages = _messages(follow(c, job["id"]))
        done = c.get(f"/fine_tuning/jobs/{job['id']}").json()
        assert done["status"] == "succeeded", messages
        resumed = [m for m in messages if m.startswith("The server stopped while this job")]
        assert len(resumed) == 1
        assert messages.count("Fine-tuning job started") == 1
        steps = [m.split(":")[0] for m in messages if m.startswith("Step ")]
        assert steps == [f"Step {k}/400" for k in range(1, 401)]  # each once, in order
        rows = _results(c, done["result_files"][0])
        assert [int(r["step"]) for r in rows] == list(range(1, 401))
        assert done["fine_tuned_model"] in {m["id"] for m in c.get("/models").json()["data"]}


def _training_pid(job_id: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ftui.server.training.train" in cmdline and job_id.encode() in cmdline:
                return int(entry.name)
    raise AssertionError(f"no training process for {job_id}")


def test_killed_training_process_resumes_from_its_checkpoint(client, make_training_file):
    tf = upload(client, make_training_file(n=100, name="ckpt.jsonl"))
    job = client.post(
        "/fine_tuning/jobs",
        json={
            "model": "tiny",
            "training_file": tf["id"],
            "seed": 3,
            "hyperparameters": {"n_epochs": 4, "batch_size": 4},
        },
    ).json()
    for payload in sse_lines(client, job["id"]):
        if payload.startswith("{") and "Checkpoint created at step 25" in payload:
            break
    os.kill(_training_pid(job["id"]), signal.SIGKILL)
    messages = _messages(follow(client, job["id"]))
    done = client.get(f"/fine_tuning/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", messages
    assert any(
        m.startswith(
            "The training process was killed by signal 9; it resumes from the checkpoint at step "
        )
        for m in messages
    ), messages
    steps = [m.split(":")[0] for m in messages if m.startswith("Step ")]
    assert steps == [f"Step {k}/100" for k in range(1, 101)]
    rows = _results(client, done["result_files"][0])
    assert [int(r["step"]) for r in rows] == list(range(1, 101))

    checkpoints = client.get(f"/fine_tuning/jobs/{job['id']}/checkpoints").json()
    assert [c["step_number"] for c in checkpoints["data"]] == [100, 75, 50]  # the last three
    newest = checkpoints["data"][0]
    assert newest["object"] == "fine_tuning.job.checkpoint"
    assert newest["fine_tuned_model_checkpoint"] == f"{done['fine_tuned_model']}:ckpt-step-100"
    assert newest["metrics"]["step"] == 100
    # A checkpoint is usable as a model.
    completion = client.post(
        "/completions",
        json={
            "model": newest["fine_tuned_model_checkpoint"],
            "prompt": "good ->",
            "max_tokens": 2,
            "temperature": 0,
        },
    )
    assert completion.status_code == 200, completion.text
    # ...and as the base of a new job (continue training from a checkpoint).
    again = client.post(
        "/fine_tuning/jobs",
        json={
            "model": newest["fine_tuned_model_checkpoint"],
            "training_file": tf["id"],
            "hyperparameters": {"n_epochs": 1, "batch_size": 50},
        },
    ).json()
    follow(client, again["id"])
    assert client.get(f"/fine_tuning/jobs/{again['id']}").json()["status"] == "succeeded"
