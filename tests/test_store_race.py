"""Concurrent requests on one file or job against the real server: nothing lost, nothing twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.apihelpers import upload
from tests.faults import messages, wait_status

ROUNDS = 60
PAIRS = 4  # races at once per round: 240 tries in all


def _upload(client: httpx.Client, content: bytes, name: str) -> str:
    response = client.post("/files", data={"purpose": "user_data"}, files={"file": (name, content)})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_deleting_a_file_never_takes_the_blob_of_an_upload_with_the_same_bytes(server):
    """Blobs are shared by SHA-256: upload X as A, then upload X as B while A is deleted. B must
    keep its content every time (before the fix a few percent of the tries lost it)."""
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.base_url, timeout=30)
        return local.client

    def upload_b(content: bytes, start: threading.Barrier) -> str:
        start.wait()
        return _upload(client(), content, "b.jsonl")

    def delete_a(a: str, start: threading.Barrier) -> int:
        start.wait()
        return client().delete(f"/files/{a}").status_code

    def content_of(b: str) -> bytes | str:
        try:  # a lost blob shows as a body cut short after the headers
            got = client().get(f"/files/{b}/content")
        except httpx.TransportError as exc:
            return type(exc).__name__
        return got.content if got.status_code == 200 else str(got.status_code)

    lost = []
    with ThreadPoolExecutor(2 * PAIRS) as pool:
        for r in range(ROUNDS):
            contents = [
                (b'{"prompt": "race %d.%d ->", "completion": " x"}\n' % (r, p)) * 500
                for p in range(PAIRS)
            ]
            first = list(pool.map(lambda c: _upload(client(), c, "a.jsonl"), contents))
            start = threading.Barrier(2 * PAIRS)
            uploads = [pool.submit(upload_b, c, start) for c in contents]
            deletes = [pool.submit(delete_a, a, start) for a in first]
            assert [d.result() for d in deletes] == [200] * PAIRS
            second = [u.result() for u in uploads]
            for b, content, got in zip(second, contents, pool.map(content_of, second), strict=True):
                if got != content:
                    lost.append((r, b, got if isinstance(got, str) else len(got)))
            for b in second:
                assert client().delete(f"/files/{b}").status_code == 200
    tries = ROUNDS * PAIRS
    assert lost == [], f"{len(lost)} of {tries} uploads lost their content: {lost[:5]}"


def test_two_cancels_at_once_cancel_once(server, make_training_file):
    with (
        httpx.Client(base_url=server.base_url, timeout=60) as first,
        httpx.Client(base_url=server.base_url, timeout=60) as second,
        ThreadPoolExecutor(2) as pool,
    ):
        tf = upload(first, make_training_file(n=40, name="cancel.jsonl"))
        job = first.post(
            "/fine_tuning/jobs",
            json={
                "model": "tiny",
                "training_file": tf["id"],
                "hyperparameters": {"n_epochs": 50, "batch_size": 1},
            },
        ).json()
        wait_status(first, job["id"], {"running"})
        start = threading.Barrier(2)

        def cancel(client: httpx.Client) -> httpx.Response:
            start.wait()
            return client.post(f"/fine_tuning/jobs/{job['id']}/cancel")

        responses = [f.result() for f in [pool.submit(cancel, first), pool.submit(cancel, second)]]
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert [r.json()["status"] for r in responses] == ["cancelled", "cancelled"]
        stopping = "Fine tuning process stopping due to job cancellation"
        assert messages(first, job["id"]).count(stopping) == 1
        # Once it is cancelled, another cancel is a clear 400.
        again = first.post(f"/fine_tuning/jobs/{job['id']}/cancel")
        assert again.status_code == 400 and "cancelled" in again.json()["error"]["message"]
