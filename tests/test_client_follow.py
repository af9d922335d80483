"""`Client.follow`: every event exactly once, in order, through faults, restarts and resumes.

Faults come from a small fault-injecting HTTP proxy of our own on loopback (``FaultProxy``)
in front of the real `ftui serve`: it cuts responses mid-body, resets connections, stalls
streams, delays answers and answers 429/503 with Retry-After, then forwards normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from ftui.cache import Cache
from ftui.client import APIConnectionError, Backoff, Client, RateLimitError, ServerError

FAST = {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 3.3}


@dataclass
class FaultProxy:
    """HTTP/1.1 proxy to ``127.0.0.1:upstream_port``; one request per client connection.

    ``add(kind, arg, match)`` queues a fault for the next request whose target contains
    ``match``: ``("status", (code, retry_after))``, ``("reset", None)``, ``("cut", nbytes)``
    (forward that many bytes of the response, then drop the connection), ``("stall", nbytes)``
    (forward that many, then hold the connection silent) or ``("delay", seconds)``.
    """

    upstream_port: int
    faults: list[tuple[str, str, object]] = field(default_factory=list)
    log: list[tuple[float, str, str, object]] = field(default_factory=list)  # time, target, fault
    port: int = 0
    tasks: set = field(default_factory=set)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, kind: str, arg: object = None, match: str = "", times: int = 1) -> None:
        self.faults.extend([(match, kind, arg)] * times)

    def _take(self, target: str) -> tuple[str, object]:
        for i, (match, kind, arg) in enumerate(self.faults):
            if match in target:
                del self.faults[i]
                return kind, arg
        return "pass", None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            request_line, headers = lines[0], [h for h in lines[1:] if h]
            target = request_line.split(" ")[1]
            length = 0
            for h in headers:
                if h.lower().startswith("content-length:"):
                    length = int(h.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            kind, arg = self._take(target)
            self.log.append((time.monotonic(), target, kind, arg))
            if kind == "reset":
                writer.transport.abort()
                return
            if kind == "status":
                code, retry_after = arg
                payload = (
                    b'{"error":{"message":"injected","type":"proxy","param":null,"code":null}}'
                )
                extra = f"Retry-After: {retry_after}\r\n" if retry_after is not None else ""
                writer.write(
                    f"HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\n{extra}"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                writer.close()
                return
            if kind == "delay":
                await asyncio.sleep(arg)  # the fault itself: a slow answer
            await self._forward(request_line, headers, body, reader, writer, kind, arg)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            writer.transport.abort()

    async def _forward(self, request_line, headers, body, reader, writer, kind, arg) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            kept = [h for h in headers if not h.lower().startswith("connection:")]
            up_writer.write(
                "\r\n".join([request_line, *kept, "Connection: close", "", ""]).encode("latin-1")
                + body
            )
            await up_writer.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
            rlines = [h for h in head.decode("latin-1").split("\r\n") if h]
            rlines = [h for h in rlines if not h.lower().startswith("connection:")]
            writer.write("\r\n".join([*rlines, "Connection: close", "", ""]).encode("latin-1"))
            budget = arg if kind in ("cut", "stall") else None
            while True:
                chunk = await up_reader.read(65536)
                if not chunk:
                    break
                if budget is not None and len(chunk) >= budget:
                    writer.write(chunk[:budget])
                    await writer.drain()
                    if kind == "stall":  # silent until the client gives up and hangs up
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(reader.read(), 20)
                    writer.transport.abort()
                    return
                if budget is not None:
                    budget -= len(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.close()
        finally:
            up_writer.close()


def key(events) -> list[tuple]:
    return [(e.created_at, e.level, e.message) for e in events]


def make(base_url: str, notices: list | None = None, **kw) -> Client:
    kw.setdefault("poll_interval", 0.1)
    kw.setdefault("backoff", Backoff(initial=0.02, maximum=0.2))
    kw.setdefault("follow_backoff", Backoff(initial=0.05, maximum=0.4))
    if notices is not None:
        kw["on_retry"] = notices.append
    return Client(base_url, **kw)


async def start_job(base_url: str, make_training_file, dialect: str, n: int = 40, **params):
    async with make(base_url, dialect=dialect) as direct:
        f = await direct.files.create(make_training_file(n=n, name=f"t{n}.jsonl"))
        return await direct.jobs.create(f.id, "ada", **(params or FAST))


async def test_follow_sse_through_drops_stalls_and_429_503(server, make_training_file):
    proxy = await FaultProxy(server.port).start()
    # Byte counts fall inside the first three events, which exist from the job's creation on.
    proxy.add("cut", 100, match="/events")  # mid-line, inside the replayed history
    proxy.add("status", (503, 0.1), match="/events")
    proxy.add("reset", match="/events")
    proxy.add("cut", 250, match="/events")  # after one whole event: the replay must skip it
    proxy.add("status", (429, 0.2), match="/events")
    proxy.add("stall", 200, match="/events")  # then silence: the idle timeout must fire
    notices: list = []
    try:
        job = await start_job(server.base_url, make_training_file, "legacy")
        async with make(
            proxy.base_url, notices, dialect="legacy", stream_idle_timeout=0.5
        ) as client:
            events = [e async for e in client.follow(job.id)]
            assert (await client.jobs.retrieve(job.id)).state == "succeeded"
    finally:
        await proxy.close()
    async with make(server.base_url, dialect="legacy") as direct:
        truth = await direct.jobs.events(job.id)
    assert key(events) == key(truth)
    assert events[-1].message == "Fine-tune succeeded"
    assert proxy.faults == []  # every fault was met
    kinds = [type(n.error) for n in notices]
    assert RateLimitError in kinds and ServerError in kinds
    assert sum(issubclass(k, APIConnectionError) for k in kinds) >= 3  # 2 cuts + stall (+ reset)
    assert [n.delay for n in notices if isinstance(n.error, RateLimitError)] == [0.2]
    assert [n.delay for n in notices if isinstance(n.error, ServerError)] == [0.1]
    # Retry-After was honoured on the wire: the next request came no sooner.
    log = [(t, arg) for t, target, _, arg in proxy.log if "/events" in target]
    i = next(i for i, (_, arg) in enumerate(log) if arg == (429, 0.2))
    assert log[i + 1][0] - log[i][0] >= 0.2


async def test_follow_poll_through_cuts_resets_delays_and_429_503(server, make_training_file):
    proxy = await FaultProxy(server.port).start()
    proxy.add("cut", 200, match="/events")
    proxy.add("status", (429, 0.15), match="/fine_tuning/jobs/")
    proxy.add("reset", match="/fine_tuning/jobs/")
    proxy.add("delay", 0.3, match="/events")
    proxy.add("status", (503, None), match="/events", times=2)
    proxy.add("cut", 50, match="/fine_tuning/jobs/")
    notices: list = []
    try:
        job = await start_job(server.base_url, make_training_file, "current")
        async with make(proxy.base_url, notices, dialect="current") as client:
            events = [e async for e in client.follow(job.id, mode="poll")]
    finally:
        await proxy.close()
    async with make(server.base_url, dialect="current") as direct:
        truth = await direct.jobs.events(job.id)
    assert [e.id for e in events] == [e.id for e in truth] and len(
        set(e.id for e in events)
    ) == len(events)
    assert events[-1].message == "The job has successfully completed"
    assert proxy.faults == []
    assert [n.delay for n in notices if isinstance(n.error, RateLimitError)] == [0.15]
    # Two 503s in a row without Retry-After: exponential backoff with jitter.
    server_delays = [n.delay for n in notices if isinstance(n.error, ServerError)]
    assert len(server_delays) == 2
    assert 0.01 <= server_delays[0] <= 0.02 and 0.02 <= server_delays[1] <= 0.04


async def test_follow_survives_server_kill_and_restart(server_factory, make_training_file):
    """Kill the server while the job trains; followers back off, the job resumes, they carry on."""
    proc = server_factory()
    job = await start_job(proc.base_url, make_training_file, "legacy")
    sse_notices: list = []
    poll_notices: list = []
    started = asyncio.Event()
    down_long_enough = asyncio.Event()

    def on_sse_retry(notice) -> None:
        sse_notices.append(notice)
        if sum(n.what.startswith("follow") for n in sse_notices) >= 3:
            down_long_enough.set()

    async def follow_sse() -> list:
        out = []
        async with make(proc.base_url, dialect="legacy", max_retries=0, on_retry=on_sse_retry) as c:
            async for e in c.follow(job.id):
                out.append(e)
                if e.message == "Fine-tune started":
                    started.set()
        return out

    async def follow_poll() -> list:
        async with make(proc.base_url, poll_notices, dialect="current", max_retries=0) as c:
            return [e async for e in c.follow(job.id, mode="poll")]

    tasks = [asyncio.create_task(follow_sse()), asyncio.create_task(follow_poll())]
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.to_thread(proc.kill)
    await asyncio.wait_for(down_long_enough.wait(), 30)
    await asyncio.to_thread(proc.start)  # same port, same data dir
    sse_events, poll_events = await asyncio.wait_for(asyncio.gather(*tasks), 90)

    async with make(proc.base_url, dialect="current") as direct:
        truth = await direct.jobs.events(job.id)
        assert (await direct.jobs.retrieve(job.id)).is_terminal
    assert key(sse_events) == key(truth)
    assert [e.id for e in poll_events] == [e.id for e in truth]
    # While the server was down the follower backed off exponentially, with jitter.
    follow_delays = [n.delay for n in sse_notices if n.what.startswith("follow")]
    for attempt, delay in enumerate(follow_delays[:3]):
        base = min(0.4, 0.05 * 2**attempt)
        assert base * 0.5 <= delay <= base, (attempt, delay)
    assert any(isinstance(n.error, APIConnectionError) for n in poll_notices)


async def test_follow_resumes_from_the_cache_after_ftui_restarts(
    server, make_training_file, tmp_path
):
    job = await start_job(server.base_url, make_training_file, "legacy")
    path = tmp_path / "cache.sqlite3"

    # First run of ftui: follows over SSE, then quits after five events.
    first: list = []
    cache = Cache(path)
    client = make(server.base_url, dialect="legacy", cache=cache.profile("p"))
    async with client, contextlib.aclosing(client.follow(job.id)) as events:
        async for e in events:
            first.append(e)
            if len(first) == 5:
                break
    cache.close()

    # Second run: the current dialect, polling; it picks up after the fifth event.
    cache = Cache(path)
    async with make(server.base_url, dialect="current", cache=cache.profile("p")) as client:
        rest = [e async for e in client.follow(job.id, from_start=False, mode="poll")]
        everything = [e async for e in client.follow(job.id)]  # cached history, then nothing new
        truth = await client.jobs.events(job.id)
    assert key(first + rest) == key(truth) == key(everything)
    assert len(first) == 5 and rest
    assert cache.profile("p").follow_cursor(job.id).count == len(truth)
    cache.close()


async def test_wait_returns_the_final_job(server, make_training_file):
    job = await start_job(server.base_url, make_training_file, "current")
    async with make(server.base_url, dialect="current") as client:
        final = await client.wait(job.id)
    assert final.id == job.id and final.succeeded and final.fine_tuned_model


async def test_follow_started_while_the_server_is_down(server_factory, make_training_file):
    """ftui may start following before the server is back (even before the dialect is known)."""
    proc = server_factory()
    job = await start_job(proc.base_url, make_training_file, "current")
    await asyncio.to_thread(proc.kill)
    retried = asyncio.Event()
    notices: list = []

    def on_retry(notice) -> None:
        notices.append(notice)
        if len(notices) >= 2:
            retried.set()

    async with make(proc.base_url, dialect="auto", max_retries=0, on_retry=on_retry) as client:
        task = asyncio.create_task(_collect(client.follow(job.id)))
        await asyncio.wait_for(retried.wait(), 30)
        await asyncio.to_thread(proc.start)
        events = await asyncio.wait_for(task, 60)
        assert (await client.jobs.retrieve(job.id)).is_terminal
        truth = await client.jobs.events(job.id)
    assert key(events) == key(truth)
    assert all(isinstance(n.error, APIConnectionError) for n in notices[:2])


async def _collect(events) -> list:
    return [e async for e in events]
