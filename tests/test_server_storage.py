"""The data dir of the real `ftui serve`: private modes, no secrets in training processes, and a
damaged or poisoned database from earlier that the server opens anyway."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from ftui.server.jobs.store import JobRecord, Store, now
from tests.apihelpers import upload
from tests.conftest import prepare_data_dir
from tests.faults import training_pids, tree_modes, wait_for, wait_status

KEY = "sk-test-h10-never-inherited"


def test_the_data_dir_is_private_and_training_gets_no_api_key(
    server_factory, tiny_model_dir, make_training_file, tmp_path
):
    data = prepare_data_dir(tmp_path / "data", tiny_model_dir)
    os.chmod(data, 0o755)  # as an older version, or a 022 umask, left them
    os.chmod(data / "base_models.toml", 0o644)
    (data / "notes.txt").write_text("not the server's")
    os.chmod(data / "notes.txt", 0o644)
    old = os.umask(0o022)
    try:
        proc = server_factory(api_key=KEY, data_dir=data)
    finally:
        os.umask(old)
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=proc.base_url, timeout=30, headers=headers) as c:
        tf = upload(c, make_training_file(n=16))
        job = c.post(
            "/fine_tuning/jobs",
            json={
                "model": "tiny",
                "training_file": tf["id"],
                "hyperparameters": {"n_epochs": 2, "batch_size": 4},
            },
        ).json()
        pid = wait_for(lambda: training_pids(job["id"]), 60, "the training process")[0]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if KEY.encode() in v or v.startswith(b"FTUI_SERVE_API")]
        assert wait_status(c, job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    modes = tree_modes(data)
    assert modes.pop("notes.txt") == 0o644  # what is not the server's is left alone
    assert {p: oct(m) for p, m in modes.items() if m & 0o077} == {}
    assert modes["."] == 0o700
    for name in ("ftui.db", "ftui.db-wal", "base_models.toml", "reserved-space"):
        assert modes[name] == 0o600, name
    # Everything was there to check: a blob, the job's files, a checkpoint and the model.
    assert any(p.startswith("blobs/") and len(Path(p).name) == 64 for p in modes)
    assert {"spec.json", "train.log", "progress.jsonl"} <= {
        Path(p).name for p in modes if p.startswith(f"jobs/{job['id']}/")
    }
    assert any("/checkpoints/step-" in p for p in modes)
    assert any(p.startswith("models/") and p.endswith("model.safetensors") for p in modes)


def _damaged_page(path: Path) -> None:
    store = Store(path.parent)
    for i in range(300):
        store.add_file_from(b"x%d" % i, filename=f"f{i}.txt", purpose="user_data")
    store.close()
    with open(path, "r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(os.urandom(4096))


@pytest.mark.parametrize("damage", ["garbage", "page"])
def test_a_damaged_database_is_set_aside_with_a_warning(
    damage, server_factory, tiny_model_dir, make_training_file, tmp_path
):
    data = prepare_data_dir(tmp_path / "data", tiny_model_dir)
    db = data / "ftui.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 500)
    else:
        _damaged_page(db)
    damaged = db.read_bytes()

    proc = server_factory(data_dir=data)
    log = "".join(proc.output)
    assert f"the database {db} is damaged" in log
    assert "starts with an empty database" in log
    assert ".recover" in log  # and how to try to get the old records back
    assert "Traceback" not in log
    aside = [p for p in data.iterdir() if p.name.startswith("ftui.db.corrupt-")]
    assert [p.read_bytes() for p in aside] == [damaged]
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        assert c.get("/files").json()["data"] == []
        assert upload(c, make_training_file(n=8))["status"] == "processed"


def _job(job_id: str, dialect: str, status: str, params: dict, **more) -> JobRecord:
    return JobRecord(
        id=job_id,
        dialect=dialect,
        created_at=now(),
        updated_at=now(),
        status=status,
        model="tiny",
        training_file="file-gone",
        validation_file=None,
        params=params,
        **more,
    )


def _not_json(constant: str) -> None:
    raise AssertionError(f"the response holds {constant}, which is not JSON")


def test_non_finite_numbers_stored_by_an_older_version_are_repaired_at_start(
    server_factory, tiny_model_dir, tmp_path
):
    data = prepare_data_dir(tmp_path / "data", tiny_model_dir)
    store = Store(data)
    lr = {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 0.5}
    store.add_job(_job("ft-poisoned", "legacy", "queued", dict(lr, prompt_loss_weight=0.5)))
    store.add_job(_job("ftjob-old", "current", "succeeded", lr, hyperparams=dict(lr)))
    store.add_event("ftjob-old", "Step 1/1", type="metrics", data={"step": 1, "train_loss": 0.5})
    store.close()
    db = sqlite3.connect(data / "ftui.db")
    for table, column in (("jobs", "body"), ("events", "data")):
        db.execute(f"UPDATE {table} SET {column} = replace({column}, '0.5', 'NaN')")
    db.commit()
    db.close()

    proc = server_factory(data_dir=data)
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        for path in ("/fine-tunes", "/fine_tuning/jobs", "/fine_tuning/jobs/ftjob-old/events"):
            response = c.get(path)
            assert response.status_code == 200, (path, response.text)
            json.loads(response.text, parse_constant=_not_json)  # strict JSON: no NaN anywhere
        poisoned = c.get("/fine-tunes/ft-poisoned").json()
        assert poisoned["status"] == "failed"
        assert "learning_rate_multiplier" in poisoned["events"][-1]["message"]
        assert "prompt_loss_weight" in poisoned["events"][-1]["message"]
        old = c.get("/fine_tuning/jobs/ftjob-old").json()
        assert old["status"] == "succeeded"  # a finished job keeps its outcome
        assert old["hyperparameters"]["learning_rate_multiplier"] is None
        events = c.get("/fine_tuning/jobs/ftjob-old/events").json()["data"]
        assert events[0]["data"] == {"step": 1, "train_loss": None}
