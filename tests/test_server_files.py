"""The Files API, errors and access rules of the real `ftui serve`."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.apihelpers import error_of, upload


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def _blob_files(server) -> set[str]:
    return {p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}


def test_upload_list_retrieve_content_delete(client, server, tmp_path):
    path = tmp_path / "train.jsonl"
    content = (
        b'{"prompt": "great ->", "completion": " positive"}\n'
        b'{"prompt": "bad ->", "completion": " negative"}\n'
    )
    path.write_bytes(content)
    created = upload(client, path, filename="data/train.jsonl")
    assert created["object"] == "file"
    assert created["id"].startswith("file-")
    assert created["bytes"] == len(content)
    assert created["filename"] == "data/train.jsonl"  # kept as given, like the original
    assert created["purpose"] == "fine-tune"
    assert created["status"] == "processed"
    assert created["status_details"] is None

    listed = client.get("/files").json()
    assert listed["object"] == "list"
    assert created["id"] in [f["id"] for f in listed["data"]]
    assert client.get(f"/files/{created['id']}").json() == created
    assert client.get(f"/files/{created['id']}/content").content == content

    deleted = client.delete(f"/files/{created['id']}")
    assert deleted.json() == {"id": created["id"], "object": "file", "deleted": True}
    error_of(client.get(f"/files/{created['id']}"), 404)
    assert created["id"] not in [f["id"] for f in client.get("/files").json()["data"]]


def test_deleting_a_file_removes_its_blob(client, server, tmp_path):
    path = tmp_path / "unique.jsonl"
    path.write_text(json.dumps({"prompt": "only here ->", "completion": " once"}) + "\n")
    before = _blob_files(server)
    created = upload(client, path)
    added = _blob_files(server) - before
    assert len(added) == 1
    client.delete(f"/files/{created['id']}")
    assert not (added & _blob_files(server))


def test_chat_format_is_accepted(client, tmp_path):
    path = tmp_path / "chat.jsonl"
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
        ]
    }
    path.write_text(json.dumps(record) + "\n\n")
    assert upload(client, path)["status"] == "processed"


BAD_FILES = [
    (b'{"prompt": "a", "completion": "b"}\nnot json\n', 2, "not valid JSON"),
    (b"[1, 2]\n", 1, "not a JSON object"),
    (b'{"prompt": "a"}\n', 1, "missing the field completion"),
    (b'{"prompt": 3, "completion": "b"}\n', 1, "field prompt must be a string"),
    (b'{"text": "a"}\n', 1, "neither"),
    (b'{"prompt": "a", "completion": "b"}\n\xff\xfe\x00\x01binary\n', 2, "UTF-8"),
    (b"", 1, "no examples"),
    (
        b'{"prompt": "a", "completion": "b"}\n'
        b'{"messages": [{"role": "assistant", "content": "x"}]}\n',
        2,
        "format",
    ),
    (b'{"messages": [{"role": "robot", "content": "x"}]}\n', 1, "role"),
    (b'{"messages": [{"role": "user", "content": "x"}]}\n', 1, "no assistant message"),
    (b'{"messages": []}\n', 1, "non-empty list"),
    # What Python's json accepts but training cannot use: lone surrogates, non-finite numbers.
    (
        b'{"prompt": "a", "completion": "b"}\n{"prompt": "\\ud800 a", "completion": " b"}\n',
        2,
        "field prompt holds a lone surrogate",
    ),
    (
        b'{"messages": [{"role": "user", "content": "hi"}, '
        b'{"role": "assistant", "content": "x\\udfff"}]}\n',
        1,
        "field messages[1].content holds a lone surrogate",
    ),
    (b'{"prompt": "a", "completion": "b", "\\ud800": 1}\n', 1, "key with a lone surrogate"),
    (b'{"prompt": "a", "completion": "b", "weight": NaN}\n', 1, "field weight is NaN"),
    (b'{"prompt": "a", "completion": "b", "w": [-Infinity]}\n', 1, "w[0] is -Infinity"),
    (b'{"prompt": "a", "completion": "b", "w": 1e400}\n', 1, "field w is Infinity"),
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", 1, "nested too deeply"),
]


@pytest.mark.parametrize(("content", "line", "words"), BAD_FILES)
def test_bad_training_files_are_rejected_with_line_and_reason(
    client, server, tmp_path, content, line, words
):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    before_files = client.get("/files").json()["data"]
    before_blobs = _blob_files(server)
    with open(path, "rb") as fh:
        response = client.post(
            "/files", data={"purpose": "fine-tune"}, files={"file": ("bad.jsonl", fh)}
        )
    error = error_of(response, 400)
    assert f"line {line} " in error["message"]
    assert words in error["message"]
    assert "bad.jsonl" in error["message"]
    assert error["param"] == "file"
    # Nothing half-written stays: no listing, no new blob, no temp file.
    assert client.get("/files").json()["data"] == before_files
    assert _blob_files(server) == before_blobs


def test_results_purpose_files_are_not_validated_as_training_data(client, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("step,loss\n1,0.5\n")
    assert upload(client, path, purpose="fine-tune-results")["purpose"] == "fine-tune-results"


@pytest.mark.parametrize(
    ("data", "param"),
    [({}, "purpose"), ({"purpose": "wrong"}, "purpose")],
)
def test_upload_parameter_errors(client, tmp_path, data, param):
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n')
    with open(path, "rb") as fh:
        response = client.post("/files", data=data, files={"file": ("t.jsonl", fh)})
    assert error_of(response, 400)["param"] == param


def test_upload_without_file_part(client):
    response = client.post("/files", data={"purpose": "fine-tune"}, files={"other": ("x", b"1")})
    assert error_of(response, 400)["param"] == "file"


def test_unknown_ids_and_encoded_paths_get_json_404(client):
    error = error_of(client.get("/files/file-doesnotexist"), 404)
    assert error["message"] == "No such File object: file-doesnotexist"
    assert error["param"] == "id"
    # The legacy CLI probes local paths as ids, quote_plus-encoded.
    error = error_of(client.get("/files/data%2Ftrain.jsonl"), 404)
    assert "data/train.jsonl" in error["message"]
    error_of(client.delete("/files/file-doesnotexist"), 404)
    error_of(client.get("/files/file-doesnotexist/content"), 404)


def test_unknown_routes_and_methods_get_json_errors(client):
    assert error_of(client.get("/no/such/route"), 404)["code"] == "unknown_url"
    assert error_of(client.put("/files"), 405)["code"] == "method_not_allowed"


def test_api_key_is_required_when_configured(server_factory):
    proc = server_factory(api_key="sk-test-secret-123456")
    with httpx.Client(base_url=proc.base_url) as c:
        missing = error_of(c.get("/models"), 401)
        assert missing["code"] == "invalid_api_key"
        wrong = error_of(
            c.get("/models", headers={"Authorization": "Bearer sk-wrong-key-987654"}), 401
        )
        assert "sk-wrong-key-987654" not in wrong["message"]  # never echo a full key
        ok = c.get("/models", headers={"Authorization": "Bearer sk-test-secret-123456"})
        assert ok.status_code == 200
    assert "sk-test-secret-123456" not in "".join(proc.output)


def test_non_loopback_bind_without_key_is_refused(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftui",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "without an API key" in result.stderr


def test_models_list_has_ready_base_models(client):
    models = client.get("/models").json()
    ids = {m["id"] for m in models["data"]}
    assert {"ada", "babbage", "tiny"} <= ids
    for m in models["data"]:
        assert m["object"] == "model"
        assert set(m) >= {"id", "object", "created", "owned_by"}


def test_base_and_unknown_models_cannot_be_deleted(client):
    error = error_of(client.delete("/models/ada"), 403)
    assert "base model" in error["message"]
    error = error_of(client.delete("/models/ada%3Aft-personal-2020-01-01-00-00-00"), 404)
    assert error["code"] == "model_not_found"
    assert "ada:ft-personal-2020-01-01-00-00-00" in error["message"]
    error_of(client.get("/models/no-such-model"), 404)


def test_file_list_order_and_pagination(client, tmp_path):
    ids = []
    for i in range(3):
        path = tmp_path / f"p{i}.jsonl"
        path.write_text(json.dumps({"prompt": f"page {i}", "completion": " x"}) + "\n")
        ids.append(upload(client, path)["id"])
    newest = client.get("/files", params={"limit": 2}).json()
    assert [f["id"] for f in newest["data"]] == ids[::-1][:2]
    assert newest["has_more"] is True
    assert newest["first_id"] == ids[2] and newest["last_id"] == ids[1]
    rest = client.get("/files", params={"limit": 2, "after": newest["last_id"]}).json()
    assert rest["data"][0]["id"] == ids[0]
    oldest = client.get("/files", params={"order": "asc"}).json()["data"]
    assert [f["id"] for f in oldest if f["id"] in ids] == ids
    assert error_of(client.get("/files", params={"order": "up"}), 400)["param"] == "order"
    assert error_of(client.get("/files", params={"limit": "x"}), 400)["param"] == "limit"
