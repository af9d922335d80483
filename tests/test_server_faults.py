"""Disk faults against the real `ftui serve`: a data dir on a small tmpfs that fills up during
training, a data dir made read-only, and a progress log with a cut line after a crash.

What must hold: the running job fails with a reason that names the disk, no job stays `running`
without a process, queued jobs wait and run once the disk takes writes again (no restart), and
uploads get a clear 507/500. The mounts need root, as in CI; a refused mount fails the test."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from ftui.server.training.progresslog import Progress
from tests.apihelpers import follow, upload
from tests.faults import (
    fill,
    job,
    messages,
    no_orphans,
    read_only,
    tmpfs,
    training_pids,
    wait_for,
    wait_status,
)

LONG = {"n_epochs": 50, "batch_size": 1}


def _current(client: httpx.Client, file_id: str, **hyperparameters) -> dict:
    response = client.post(
        "/fine_tuning/jobs",
        json={"model": "tiny", "training_file": file_id, "hyperparameters": hyperparameters},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _legacy(client: httpx.Client, file_id: str, **params) -> dict:
    response = client.post("/fine-tunes", json={"model": "ada", "training_file": file_id, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _trained_a_step(client: httpx.Client, job_id: str) -> bool:
    return any(m.startswith("Step 2/") for m in messages(client, job_id))


def _post_file(client: httpx.Client, content: bytes) -> httpx.Response:
    return client.post(
        "/files", data={"purpose": "fine-tune"}, files={"file": ("more.jsonl", content)}
    )


def test_a_full_disk_fails_the_running_job_and_queued_jobs_wait_for_space(
    server_factory, make_training_file, tmp_path
):
    with tmpfs(tmp_path / "disk", "24m") as disk:
        proc = server_factory(data_dir=disk / "data")
        try:
            _fill_during_training(proc, disk, make_training_file)
        finally:
            proc.kill()  # before the tmpfs goes away


def _fill_during_training(proc, disk: Path, make_training_file) -> None:
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        tf = upload(c, make_training_file(n=40))
        running = _current(c, tf["id"], **LONG)
        queued = _legacy(c, tf["id"], n_epochs=1, batch_size=8)
        wait_for(lambda: _trained_a_step(c, running["id"]), 60, "a trained step")

        fill(disk)
        failed = wait_status(c, running["id"], {"failed"}, timeout=60)
        assert failed["error"]["message"].startswith("The server's disk is full"), failed
        assert "Free some space" in failed["error"]["message"]
        assert failed["error"]["code"] == "storage_full"
        assert training_pids(running["id"]) == []
        no_orphans(c)

        # The failure may have used the space the server keeps for it: take that too.
        fill(disk)
        more = make_training_file(n=8, seed=1, name="more.jsonl").read_bytes()
        refused = _post_file(c, more)
        assert refused.status_code == 507, refused.text
        error = refused.json()["error"]
        assert error["message"].startswith("The server's disk is full"), error
        assert error["type"] == "server_error" and error["code"] == "storage_full"
        assert list((disk / "data" / "blobs" / "tmp").iterdir()) == []  # no temp file left
        assert job(c, queued["id"])["status"] == "pending"
        assert "Fine-tune started" not in messages(c, queued["id"])

        (disk / "filler").unlink()
        later = _current(c, tf["id"], n_epochs=1, batch_size=8)
        for job_id in (queued["id"], later["id"]):
            assert wait_status(c, job_id, {"succeeded", "failed"})["status"] == "succeeded"
        assert _post_file(c, more).status_code == 200
        no_orphans(c)
    assert "Traceback" not in "".join(proc.output)  # every fault was expected and handled


def test_a_read_only_data_dir_fails_the_running_job_and_queued_jobs_wait(
    server_factory, make_training_file, tmp_path
):
    data = tmp_path / "data"
    proc = server_factory(data_dir=data)
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        tf = upload(c, make_training_file(n=16))
        running = _current(c, tf["id"], n_epochs=50, batch_size=4)  # a checkpoint every 4 steps
        wait_for(lambda: _trained_a_step(c, running["id"]), 60, "a trained step")
        spare = upload(c, make_training_file(n=8, seed=2, name="spare.jsonl"))  # used by no job
        with read_only(data):
            queued = _legacy(c, tf["id"], n_epochs=1, batch_size=8)
            refused = _post_file(c, make_training_file(n=8, seed=1, name="more.jsonl").read_bytes())
            assert refused.status_code == 500, refused.text
            message = refused.json()["error"]["message"]
            assert message.startswith("The server's data directory is read-only"), message
            kept = c.delete(f"/files/{spare['id']}")  # any route's write says why, too
            assert kept.status_code == 500, kept.text
            assert kept.json()["error"]["code"] == "storage_read_only"
            assert "nothing was changed" in kept.json()["error"]["message"]
            assert c.get(f"/files/{spare['id']}").status_code == 200

            failed = wait_status(c, running["id"], {"failed"}, timeout=60)
            reason = failed["error"]["message"]
            assert reason.startswith("The server's data directory is read-only"), reason
            assert "Make the data directory writable" in reason
            assert failed["error"]["code"] == "storage_read_only"
            assert training_pids(running["id"]) == []
            no_orphans(c)
            waits = wait_for(
                lambda: [m for m in messages(c, queued["id"]) if "the job waits" in m],
                30,
                "the queued job to say why it waits",
            )
            assert "read-only" in waits[0]
            assert job(c, queued["id"])["status"] == "pending"
        later = _current(c, tf["id"], n_epochs=1, batch_size=8)
        for job_id in (queued["id"], later["id"]):
            assert wait_status(c, job_id, {"succeeded", "failed"})["status"] == "succeeded"
        assert messages(c, queued["id"]).count(waits[0]) == 1  # announced once, not per retry
    proc.stop()
    assert "Traceback" not in "".join(proc.output)  # every fault was expected and handled


def test_a_job_that_cannot_start_fails_with_a_reason_and_the_queue_goes_on(
    server_factory, make_training_file
):
    proc = server_factory()
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        tf = upload(c, make_training_file(n=40))
        first = _current(c, tf["id"], **LONG)
        broken = _legacy(c, tf["id"], n_epochs=1, batch_size=8)
        after = _legacy(c, tf["id"], n_epochs=1, batch_size=8)
        (proc.data_dir / "jobs" / broken["id"]).write_text("a stray file where its directory goes")
        wait_status(c, first["id"], {"running"})
        assert c.post(f"/fine_tuning/jobs/{first['id']}/cancel").status_code == 200
        failed = wait_status(c, broken["id"], {"failed", "succeeded"})
        assert failed["status"] == "failed"
        assert messages(c, broken["id"])[-1].startswith(
            "Fine-tune failed: The job could not be started: FileExistsError"
        )
        assert wait_status(c, after["id"], {"failed", "succeeded"})["status"] == "succeeded"
    assert "could not start job" in "".join(proc.output)  # logged, with the traceback
    proc.stop()


def test_the_progress_writer_takes_back_a_line_the_disk_has_no_room_for(tmp_path):
    with tmpfs(tmp_path / "small", "64k") as disk:
        progress = Progress(disk / "progress.jsonl")
        progress.emit("step", step=1)
        with pytest.raises(OSError) as refused:
            progress.emit("step", step=2, padding="x" * 200_000)  # more than the disk holds
        assert refused.value.errno == errno.ENOSPC
        progress.emit("failed", message="disk full")  # the room it took is free again
        progress.close()
        lines = (disk / "progress.jsonl").read_bytes().split(b"\n")
        assert [json.loads(line)["type"] for line in lines[:-1]] == ["step", "failed"]
        assert lines[-1] == b""


def _step_reached(progress: Path, step: int) -> bool:
    try:
        lines = progress.read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return False
    return any(json.loads(line).get("step", 0) >= step for line in lines if b'"step"' in line)


def test_a_cut_progress_line_after_a_crash_does_not_fail_the_resumed_job(
    server_factory, make_training_file
):
    """The server and its training process are killed mid-job; the progress log then ends with
    a cut line (and holds a garbled one, as an older version could leave). After a restart the
    job resumes from its checkpoint and succeeds with every step once; each legacy job has one
    "enqueued" event (the recovered job was once queued twice)."""
    proc = server_factory()
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        tf = upload(c, make_training_file(n=40))
        crashed = _legacy(c, tf["id"], n_epochs=4, batch_size=1)  # 160 steps, checkpoint at 40
        queued = _legacy(c, tf["id"], n_epochs=1, batch_size=8)
    progress = proc.data_dir / "jobs" / crashed["id"] / "progress.jsonl"
    wait_for(lambda: _step_reached(progress, 45), 120, "step 45")
    proc.kill()
    for pid in training_pids(crashed["id"]):
        os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not training_pids(crashed["id"]), 30, "the training process to die")
    with open(progress, "ab") as fh:
        fh.write(b'{"type": "step", "step": 4{"type": "hyperparams", "n_epochs": 4}\n')
        fh.write(b'{"type": "step", "step": 46, "elapsed_tokens": 9')

    proc.start()
    with httpx.Client(base_url=proc.base_url, timeout=30) as c:
        events = [e["message"] for e in follow(c, crashed["id"])]
        done = job(c, crashed["id"])
        assert done["status"] == "succeeded", events
        assert any(m.startswith("The server stopped while this job was training") for m in events)
        result = done["result_files"][0]["id"]
        rows = c.get(f"/files/{result}/content").text.splitlines()[1:]
        assert [int(r.split(",")[0]) for r in rows] == list(range(1, 161))
        assert job(c, queued["id"])["status"] in {"pending", "running", "succeeded"}
        follow(c, queued["id"])
        for job_id in (crashed["id"], queued["id"]):
            enqueued = [m for m in messages(c, job_id) if m.startswith("Fine-tune enqueued")]
            assert len(enqueued) == 1, messages(c, job_id)
        assert not any(m.startswith("Fine-tune is in the queue") for m in events)
    log = "".join(proc.output)
    assert "ended with an incomplete line" in log
    assert "skipped a line that is not a progress message" in log
    proc.stop()
