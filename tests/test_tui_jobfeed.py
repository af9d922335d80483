"""The job feed without the app (no Textual, no Pilot): a real client against the real server,
the news recorded by a listener."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from ftui.client import APIConnectionError, Client
from ftui.jobfeed import JobFeed, JobStore
from ftui.types import Job
from tests.apihelpers import upload
from tests.tui_support import DEAD_URL, job_json


@dataclass
class Recorder:
    """A FeedListener that keeps what it is told."""

    updates: list[list[tuple[Job, str]]] = field(default_factory=list)
    progress: list[tuple[str, int, int | None]] = field(default_factory=list)
    reachable_calls: int = 0
    unreachable_reasons: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def jobs_updated(self, changes: list[tuple[Job, str]]) -> None:
        self.updates.append(list(changes))

    def job_progress(self, job_id: str, step: int, total: int | None) -> None:
        self.progress.append((job_id, step, total))

    def reachable(self) -> None:
        self.reachable_calls += 1

    def unreachable(self, reason: str) -> None:
        self.unreachable_reasons.append(reason)

    def poll_failed(self, error: BaseException) -> None:
        self.failures.append(error)


async def until(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        await asyncio.sleep(0.05)


async def test_feed_lists_then_reports_each_status_change_once(server, make_training_file):
    listener = Recorder()
    async with Client(server.base_url, max_retries=0) as client:

        async def api() -> Client:
            return client

        feed = JobFeed(api, listener)
        poller = asyncio.create_task(feed.run())
        try:
            await until(lambda: feed.baseline, what="the first list")
            assert listener.reachable_calls >= 1 and listener.updates[0] == []
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                file_id = upload(http, make_training_file(n=12))["id"]
                job_id = http.post(
                    "/fine_tuning/jobs",
                    json={
                        "training_file": file_id,
                        "model": "ada",
                        "hyperparameters": {"n_epochs": 1},
                    },
                ).json()["id"]
            feed.poke()  # a job created elsewhere: the next full list has it

            def finished() -> bool:
                job = feed.store.get(job_id)
                return job is not None and job.state == "succeeded"

            await until(finished, timeout=120, what="the job to succeed")
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            await feed.aclose()
    changes = [
        (job.state, old) for batch in listener.updates for job, old in batch if job.id == job_id
    ]
    assert changes and changes[-1][0] == "succeeded" and changes[-1][1] != "succeeded"
    states = [state for state, _old in changes]
    assert len(states) == len(set(states))  # each new state reported once
    assert not listener.failures and not listener.unreachable_reasons


async def test_feed_says_unreachable_and_keeps_trying():
    listener = Recorder()
    attempts = 0

    async def api() -> Client:
        nonlocal attempts
        attempts += 1
        raise APIConnectionError(f"connection refused ({DEAD_URL})")

    feed = JobFeed(api, listener, [Job.from_api(job_json(1))])
    poller = asyncio.create_task(feed.run())
    try:
        await until(lambda: listener.unreachable_reasons, what="unreachable")
        feed.poke()  # asked again (the r key): it tries again at once
        await until(lambda: attempts >= 2, timeout=5, what="a second attempt")
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
    assert "connection refused" in listener.unreachable_reasons[0]
    assert listener.reachable_calls == 0 and not listener.failures
    assert not feed.baseline and len(feed.store) == 1  # the cached list stays


def test_store_reports_state_changes_not_status_words():
    store = JobStore([Job.from_api(job_json(1, "running")), Job.from_api(job_json(2, "running"))])
    queued = dict(job_json(3, "running"), status="validating_files")
    store.update([Job.from_api(queued)])
    changes = store.update(
        [
            Job.from_api(job_json(1, "succeeded")),
            Job.from_api(job_json(2, "running")),
            Job.from_api(dict(queued, status="queued")),  # pending → pending: no change
        ]
    )
    assert [(job.id, old) for job, old in changes] == [("ftjob-000001", "running")]
    assert [j.id for j in store.all()] == ["ftjob-000003", "ftjob-000002", "ftjob-000001"]
    assert [j.id for j in store.active()] == ["ftjob-000002", "ftjob-000003"]
