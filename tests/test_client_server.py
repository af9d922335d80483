"""The whole loop through the client against the real `ftui serve`, in both dialects."""

from __future__ import annotations

import logging
import tracemalloc

import httpx
import pytest

from ftui.cache import Cache
from ftui.client import (
    AuthenticationError,
    Backoff,
    BadRequestError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
)

FAST = {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 3.3}
KEY = "sk-ftui-test-KEY-never-shown-0123456789"


def make(base_url: str, **kw) -> Client:
    kw.setdefault("poll_interval", 0.1)
    kw.setdefault("backoff", Backoff(initial=0.05, maximum=0.5))
    return Client(base_url, **kw)


class CountingTransport(httpx.AsyncHTTPTransport):
    """A real transport that remembers the paths it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


@pytest.mark.parametrize("dialect", ["legacy", "current"])
async def test_whole_loop(server, make_training_file, tmp_path, dialect):
    train = make_training_file(n=40, name="train.jsonl")
    valid = make_training_file(n=16, seed=1, name="valid.jsonl")
    cache = Cache(tmp_path / "cache.sqlite3")
    progress: list[tuple[int, int]] = []
    async with make(server.base_url, dialect=dialect, cache=cache.profile("p")) as client:
        # Files: upload (streamed, with progress), list, retrieve, content.
        f = await client.files.create(train, on_progress=lambda s, t: progress.append((s, t)))
        v = await client.files.create(valid)
        assert (f.filename, f.purpose, f.bytes) == (
            "train.jsonl",
            "fine-tune",
            train.stat().st_size,
        )
        sent = [s for s, _ in progress]
        assert sent == sorted(sent) and progress[-1][0] == progress[-1][1] > f.bytes
        assert f.id in {x.id for x in await client.files.list()}
        assert await client.files.retrieve(f.id) == f
        assert await client.files.content(f.id) == train.read_bytes()
        out = await client.files.content(f.id, tmp_path / "copy.jsonl")
        assert out.read_bytes() == train.read_bytes()
        assert await client.files.head(f.id, 10) == (train.read_bytes()[:10], True)
        assert await client.files.head(f.id, f.bytes) == (train.read_bytes(), False)

        # Jobs: create with every option the dialect has.
        if dialect == "legacy":
            job = await client.jobs.create(
                f.id,
                "ada",
                validation_file=v.id,
                prompt_loss_weight=0.02,
                compute_classification_metrics=True,
                classification_positive_class=" positive",
                classification_betas=[0.5, 2.0],
                suffix="Loop Test",
                seed=11,
                **FAST,
            )
            assert job.hyperparameters["prompt_loss_weight"] == 0.02
            assert job.hyperparameters["classification_positive_class"] == " positive"
        else:
            job = await client.jobs.create(
                f.id, "babbage", validation_file=v.id, suffix="loop_test", seed=11, **FAST
            )
            assert (job.seed, job.suffix) == (11, "loop_test")
            assert job.hyperparameters["n_epochs"] == 1
        assert (job.dialect, job.training_file, job.validation_file) == (dialect, f.id, v.id)
        assert job.state == "pending"
        assert job.id in [j.id for j in await client.jobs.list()]

        events = [e async for e in client.follow(job.id)]
        done = await client.jobs.retrieve(job.id)
        assert done.state == "succeeded", [e.message for e in events]
        # follow gave the whole history, once, in order.
        assert [(e.created_at, e.message) for e in events] == [
            (e.created_at, e.message) for e in await client.jobs.events(job.id)
        ]
        assert events[-1].message in ("Fine-tune succeeded", "The job has successfully completed")

        rows = await client.jobs.results(job.id)
        assert [r.step for r in rows] == list(range(1, len(rows) + 1)) and len(rows) == 5
        if dialect == "legacy":
            assert "loop-test" in done.fine_tuned_model
            assert isinstance(rows[0]["training_loss"], float)
            last = rows[-1]
            assert last["validation_loss"] is not None
            assert 0.0 <= last["validation_token_accuracy"] <= 1.0
            # Classification metrics on the validation set, by name, betas as asked.
            assert 0.0 <= last["classification/accuracy"] <= 1.0
            assert {"classification/f0.5", "classification/f2.0"} <= set(last)
        else:
            assert ":loop_test:" in done.fine_tuned_model
            assert isinstance(rows[0]["train_loss"], float)

        # Models: list, retrieve, delete.
        assert done.fine_tuned_model in [m.id for m in await client.models.list()]
        model = await client.models.retrieve(done.fine_tuned_model)
        assert model.is_fine_tuned and model.id == done.fine_tuned_model
        deleted = await client.models.delete(done.fine_tuned_model)
        assert deleted.deleted and deleted.id == done.fine_tuned_model
        with pytest.raises(NotFoundError, match="does not exist"):
            await client.models.retrieve(done.fine_tuned_model)
        with pytest.raises(PermissionDeniedError, match="base model"):
            await client.models.delete("ada")

        assert (await client.files.delete(v.id)).deleted
        with pytest.raises(NotFoundError, match=v.id):
            await client.files.retrieve(v.id)

    # What the client saw is in the cache, for the next start of ftui.
    p = Cache(tmp_path / "cache.sqlite3").profile("p")
    assert p.get_job(job.id).state == "succeeded"
    assert [e.message for e in p.events(job.id)] == [e.message for e in events]
    assert [r.step for r in p.results(job.id)] == [r.step for r in rows]
    assert done.fine_tuned_model not in [m.id for m in p.list_models()]
    assert v.id not in [x.id for x in p.list_files()]


async def test_each_dialect_reads_and_cancels_the_others_jobs(server, make_training_file):
    long_file = make_training_file(n=200, name="long.jsonl")
    async with (
        make(server.base_url, dialect="legacy") as legacy,
        make(server.base_url, dialect="current") as current,
    ):
        f = await current.files.create(long_file)
        job = await legacy.jobs.create(f.id, "tiny", n_epochs=50, batch_size=1)
        seen = await current.jobs.retrieve(job.id)
        assert (seen.id, seen.dialect, seen.training_file) == (job.id, "current", f.id)
        assert job.id in [j.id for j in await current.jobs.list()]
        cancelled = await current.jobs.cancel(job.id)
        assert cancelled.state == "cancelled"
        assert (await legacy.jobs.retrieve(job.id)).status == "cancelled"
        # Following a finished job replays its history and ends.
        messages = [e.message async for e in legacy.follow(job.id)]
        assert messages[0] == f"Created fine-tune: {job.id}" and "Fine-tune cancelled" in messages
        with pytest.raises(BadRequestError, match="cannot be cancelled"):
            await legacy.jobs.cancel(job.id)


async def test_auto_dialect_is_probed_once_and_remembered(server, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite3")
    transport = CountingTransport()
    async with make(server.base_url, cache=cache.profile("p"), transport=transport) as client:
        assert await client.capabilities() == {
            "dialect": "current",
            "current": True,
            "legacy": True,
        }
        await client.jobs.list()
    probes = [p for p in transport.paths if p.endswith(("/fine_tuning/jobs", "/fine-tunes"))]
    assert len(probes) == 3  # two probes, then the list itself
    transport = CountingTransport()
    async with make(server.base_url, cache=cache.profile("p"), transport=transport) as client:
        assert await client.dialect() == "current"
        await client.jobs.list()
    assert transport.paths == ["/v1/fine_tuning/jobs"]


async def test_server_errors_arrive_typed_with_the_servers_words(server, make_training_file):
    notices: list = []
    async with make(server.base_url, dialect="current", on_retry=notices.append) as client:
        with pytest.raises(NotFoundError, match="No such File object: file-nope"):
            await client.files.retrieve("file-nope")
        with pytest.raises(NotFoundError) as info:
            await client.jobs.retrieve("ftjob-nope")
        assert info.value.status_code == 404 and "ftjob-nope" in info.value.message
        f = await client.files.create(make_training_file(n=8))
        with pytest.raises(BadRequestError) as info:
            await client.jobs.create(f.id, "ada", n_epochs=0)
        assert info.value.param == "n_epochs"
        with pytest.raises(NotFoundError):
            await client.jobs.results("ftjob-nope")
    assert notices == []  # none of these is worth a retry


async def test_upload_streams_from_disk(server, tmp_path):
    """A 48 MB upload never holds more than a few chunks in memory."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(48):
            fh.write(b"x" * (1 << 20))
    async with make(server.base_url, dialect="current") as client:
        tracemalloc.start()
        try:
            f = await client.files.create(big, purpose="user_data")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert f.bytes == 48 << 20
        assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


async def test_api_key_is_sent_and_never_leaks(server_factory, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    proc = server_factory(api_key=KEY)
    cache = Cache(tmp_path / "cache.sqlite3")
    async with make(proc.base_url, cache=cache.profile("p")) as anonymous:
        with pytest.raises(AuthenticationError):
            await anonymous.models.list()
    wrong = KEY[:-4] + "XXXX"
    async with make(proc.base_url, api_key=wrong) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.models.list()
    assert wrong not in str(info.value) and wrong not in repr(client)
    async with make(proc.base_url, api_key=KEY, cache=cache.profile("p")) as client:
        assert await client.dialect() == "current"
        assert [m.id for m in await client.models.list()]
        assert KEY not in repr(client) and KEY not in str(vars(client))
    cache.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text


async def test_pause_resume_and_checkpoints(server, make_training_file):
    async with make(server.base_url, dialect="current") as client:
        # Long enough (600 steps) that the pause lands well before the last step.
        f = await client.files.create(make_training_file(n=300, name="pause.jsonl"))
        job = await client.jobs.create(f.id, "tiny", n_epochs=2, batch_size=1)
        events = []
        paused = resumed = None
        async for e in client.follow(job.id, mode="poll"):
            events.append(e)
            if paused is None and e.message.startswith("Step "):
                paused = await client.jobs.pause(job.id)
            if resumed is None and "paused" in e.message:
                assert (await client.jobs.retrieve(job.id)).state == "paused"
                with pytest.raises(BadRequestError, match="only a queued or running job"):
                    await client.jobs.pause(job.id)
                resumed = await client.jobs.resume(job.id)
        done = await client.jobs.retrieve(job.id)
        truth = await client.jobs.events(job.id)
        checkpoints = await client.jobs.checkpoints(job.id)
        with pytest.raises(BadRequestError, match="only a paused job"):
            await client.jobs.resume(job.id)
    assert paused.state == "paused" and resumed.state in ("pending", "running")
    assert done.state == "succeeded"
    assert [e.id for e in events] == [e.id for e in truth]
    assert any("resumed" in e.message for e in events)
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True) and steps[0] == 600
    for c in checkpoints:
        assert c.fine_tuning_job_id == job.id
        assert c.fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-{c.step_number}"
        assert c.metrics["step"] == c.step_number


async def test_current_only_calls_on_a_legacy_profile_say_so(server):
    async with make(server.base_url, dialect="legacy") as client:
        with pytest.raises(UnsupportedError, match="pause: only the current"):
            await client.jobs.pause("ft-x")
        with pytest.raises(UnsupportedError, match="checkpoints"):
            await client.jobs.checkpoints("ft-x")
