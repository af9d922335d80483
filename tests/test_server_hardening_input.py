"""Bad request bodies and headers against the real `ftui serve`: each is a clear 400 that names
the field, header or file, nothing is stored, and nothing already stored breaks a listing."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from tests.apihelpers import error_of, upload
from tests.faults import wait_status


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def training_file(server, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("input") / "train.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"n{i} ->", "completion": " ok"}) + "\n" for i in range(8))
    )
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        return upload(c, path)["id"]


def _jobs(client: httpx.Client) -> int:
    return len(client.get("/fine_tuning/jobs", params={"limit": 10_000}).json()["data"])


def _post_raw(client: httpx.Client, path: str, raw: str | bytes, headers=None) -> httpx.Response:
    headers = {"content-type": "application/json", **(headers or {})}
    return client.post(path, content=raw, headers=headers)


# --- non-finite numbers -----------------------------------------------------------------
NON_FINITE = [
    ("/fine-tunes", '"learning_rate_multiplier": NaN', "learning_rate_multiplier"),
    ("/fine-tunes", '"prompt_loss_weight": NaN', "prompt_loss_weight"),
    ("/fine-tunes", '"classification_betas": [1, -Infinity]', "classification_betas[1]"),
    (
        "/fine_tuning/jobs",
        '"hyperparameters": {"learning_rate_multiplier": NaN}',
        "hyperparameters.learning_rate_multiplier",
    ),
    (
        "/fine_tuning/jobs",
        '"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1e400}}}',
        "method.supervised.hyperparameters.n_epochs",
    ),
]


@pytest.mark.parametrize(("path", "field", "param"), NON_FINITE)
def test_non_finite_numbers_are_refused_and_never_stored(client, training_file, path, field, param):
    before = _jobs(client)
    raw = f'{{"model": "tiny", "training_file": "{training_file}", {field}}}'
    error = error_of(_post_raw(client, path, raw), 400)
    assert error["param"] == param
    assert f"'{param}'" in error["message"] and "finite" in error["message"]
    assert _jobs(client) == before
    assert client.get("/fine-tunes").status_code == 200


@pytest.mark.parametrize("field", ["temperature", "top_p", "presence_penalty", "frequency_penalty"])
def test_non_finite_sampling_parameters_are_refused(client, field):
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"model": "tiny", "prompt": "hi", "max_tokens": 2, "{field}": {literal}}}'
        error = error_of(_post_raw(client, "/completions", raw), 400)
        assert error["param"] == field, error
        assert literal.lstrip("-") in error["message"]


def test_model_in_the_home_of_no_such_user_is_a_404(client):
    """Found by the fuzz test: `~0` made pathlib raise while resolving the model."""
    response = client.post("/completions", json={"model": "~0", "prompt": "hi"})
    error = error_of(response, 404)
    assert "home directory that does not exist" in error["message"]


def test_stored_non_finite_numbers_do_not_break_listings(server_factory):
    """A row written before requests were checked (or by hand) is shown with null, not a 500."""
    server = server_factory()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.get("/fine-tunes").status_code == 200
    server.stop()
    body = {
        "model": "tiny",
        "training_file": "file-gone",
        "validation_file": None,
        "params": {"learning_rate_multiplier": float("nan"), "n_epochs": None},
        "hyperparams": {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": float("inf")},
        "organization_id": "org-personal",
    }
    with sqlite3.connect(server.data_dir / "ftui.db") as db:
        db.execute(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?)",
            ("ftjob-nan", "current", 1, 1, "failed", json.dumps(body)),
        )
        db.execute(
            "INSERT INTO events (id, job_id, created_at, level, message, type, data) "
            "VALUES (?,?,?,?,?,?,?)",
            ("ftevent-nan", "ftjob-nan", 1, "info", "step", "metrics", '{"train_loss": NaN}'),
        )
    server.start()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for path in ("/fine-tunes", "/fine_tuning/jobs", "/fine_tuning/jobs/ftjob-nan"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
        job = client.get("/fine_tuning/jobs/ftjob-nan").json()
        assert job["hyperparameters"]["learning_rate_multiplier"] is None
        events = client.get("/fine_tuning/jobs/ftjob-nan/events").json()["data"]
        assert events[0]["data"] == {"train_loss": None}
    assert "had non-finite values" in "".join(server.output)  # repaired when the store opens


# --- structure and types ------------------------------------------------------------------
def test_deep_nesting_is_a_clear_400(client):
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/fine-tunes", "/completions", "/fine_tuning/jobs"):
        error = error_of(_post_raw(client, path, deep), 400)
        assert "nested too deeply" in error["message"]
    shallow_but_deep = '{"model": "tiny", "metadata": {"a": ' + "[" * 40 + "]" * 40 + "}}"
    error = error_of(_post_raw(client, "/fine_tuning/jobs", shallow_but_deep), 400)
    assert "nested too deeply" in error["message"]


def test_numbers_python_cannot_read_are_a_clear_400(client):
    error = error_of(_post_raw(client, "/fine-tunes", '{"n_epochs": ' + "9" * 5000 + "}"), 400)
    assert "could not parse the JSON body" in error["message"]


WRONG_TYPES = [
    ({"method": "supervised"}, "method", "'method' must be an object"),
    ({"method": ["supervised"]}, "method", "'method' must be an object"),
    ({"method": {"type": 5}}, "method.type", "expected a string"),
    ({"method": {"type": "supervised", "supervised": "x"}}, "method.supervised", "object"),
    (
        {"method": {"supervised": {"hyperparameters": "x"}}},
        "method.supervised.hyperparameters",
        "must be an object",
    ),
    ({"method": {"supervised": {"hyperparameters": [1]}}}, None, "must be an object"),
    ({"method": {"type": "supervised", "dpo": {}}}, "method.dpo", "Unrecognized"),
    ({"method": {"supervised": {"x": 1}}}, "method.supervised.x", "Unrecognized"),
    ({"hyperparameters": [1], "method": {"type": "supervised"}}, "hyperparameters", "object"),
    ({"integrations": [1]}, "integrations[0]", "must be an object"),
    ({"integrations": [{"type": 3}]}, "integrations[0]", "string 'type'"),
    ({"metadata": {"k": {"nested": "x"}}}, "metadata", "string pairs"),
]


@pytest.mark.parametrize(("extra", "param", "words"), WRONG_TYPES)
def test_wrong_types_in_nested_objects_are_400s(client, training_file, extra, param, words):
    before = _jobs(client)
    body = {"model": "tiny", "training_file": training_file, **extra}
    error = error_of(client.post("/fine_tuning/jobs", json=body), 400)
    if param is not None:
        assert error["param"] == param, error
    assert words in error["message"], error
    assert _jobs(client) == before


# --- organization, names ----------------------------------------------------------------
def test_organization_header_is_checked_at_creation(client, training_file):
    before = _jobs(client)
    body = {"model": "tiny", "training_file": training_file}
    cases = [
        ("org-\x1b]0;PWNED\x07\x1b[2J", "control character (U+001B at position 4)"),
        ("org-" + "a" * 300, "304 characters long"),
        ("org-a:b/../c", "only letters, digits"),
    ]
    for org, words in cases:
        for path in ("/fine_tuning/jobs", "/fine-tunes"):
            response = client.post(path, json=body, headers={"OpenAI-Organization": org})
            error = error_of(response, 400)
            assert error["param"] == "OpenAI-Organization"
            assert words in error["message"], error["message"]
            assert "PWNED" not in error["message"]
    assert _jobs(client) == before


def test_the_widest_names_accepted_are_stored_after_training(client, training_file, server):
    """The longest organization and suffix a request may carry still give a model directory
    the filesystem takes: the job that trains with them registers its model (a 300-character
    organization used to train fully and then fail at the final rename)."""
    organization = "org-" + "a" * 60
    too_long = client.post(
        "/fine-tunes",
        json={"training_file": training_file, "model": "tiny"},
        headers={"OpenAI-Organization": organization + "a"},
    )
    assert "at most 64" in error_of(too_long, 400)["message"]
    created = client.post(
        "/fine-tunes",
        json={"training_file": training_file, "model": "tiny", "suffix": "é" * 40, "n_epochs": 1},
        headers={"OpenAI-Organization": organization},
    )
    assert created.status_code == 200, created.text
    job = wait_status(client, created.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    model = job["fine_tuned_model"]
    assert organization[4:] in model and client.get(f"/models/{model}").status_code == 200
    assert all(len(p.name.encode()) <= 255 for p in (server.data_dir / "models").iterdir())


# --- uploads ------------------------------------------------------------------------------
def _file_count(client: httpx.Client) -> int:
    return len(client.get("/files").json()["data"])


LINE = b'{"prompt": "a ->", "completion": " b"}\n'


@pytest.mark.parametrize(
    ("filename", "words"),
    [
        ("x\x1b[31mRED.jsonl", "control character (U+001B at position 1)"),
        ("a\x01b.jsonl", "control character (U+0001"),
        ("a" * 300 + ".jsonl", "306 bytes long; the limit is 255 bytes"),
        ("é" * 200 + ".jsonl", "406 bytes long"),
        ("a" * 5000 + ".jsonl", "file names may be at most 255 bytes"),
    ],
)
def test_bad_upload_filenames_are_named(client, filename, words):
    """Sent as raw multipart: client libraries percent-encode some control characters."""
    before = _file_count(client)
    boundary = "b0undary"
    raw = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\n\r\n'
        ).encode()
        + LINE
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/files",
        content=raw,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    error = error_of(response, 400)
    assert words in error["message"], error["message"]
    assert "\x1b" not in error["message"]
    assert _file_count(client) == before


def test_upload_must_be_multipart(client):
    response = client.post("/files", json={"purpose": "fine-tune", "file": "x"})
    error = error_of(response, 400)
    assert "multipart/form-data" in error["message"] and "application/json" in error["message"]


def test_truncated_multipart_upload_is_named(client):
    before = _file_count(client)
    boundary = "b0undary"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"'
        "\r\n\r\n"
    ).encode() + LINE  # and no closing boundary
    response = client.post(
        "/files",
        content=raw,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    error = error_of(response, 400)
    assert "cut off" in error["message"]
    assert _file_count(client) == before


def test_empty_ids_in_the_url_are_named(client):
    for path in ("/files/", "/files//content", "/models/"):
        error = error_of(client.get(path), 404)
        assert "No" in error["message"] and "id in the URL" in error["message"], path


def test_quoted_input_is_escaped_in_error_messages(client):
    error = error_of(client.get("/fine_tuning/jobs/ftjob-%1B%5D0%3BX%07%00"), 404)
    assert error["message"] == "No such FineTuningJob object: ftjob-\\x1b]0;X\\x07\\x00"


def test_event_stream_flag_must_be_a_boolean(client, training_file):
    created = client.post(
        "/fine-tunes", json={"training_file": training_file, "model": "no-such-base-model"}
    ).json()
    error = error_of(client.get(f"/fine-tunes/{created['id']}/events?stream=maybe"), 400)
    assert error["param"] == "stream" and "'maybe'" in error["message"]
    listed = client.get(f"/fine-tunes/{created['id']}/events", params={"stream": "False"})
    assert listed.json()["object"] == "list"
