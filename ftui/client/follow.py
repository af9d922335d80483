"""The resumable ``follow``: every event of a job exactly once, in order, through any outage.

Uses the legacy SSE stream where the server has it (``mode="sse"``), else polls the events
endpoint with the ``after`` cursor (``mode="poll"``). The SSE stream replays the job's whole
history, so a reconnect skips the first *N* events already yielded; polling walks the newest-first
pages down to the last id seen. With a cache, each event is stored before it is yielded, so a
later ``follow`` (in this process or the next) carries on from the stored cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ftui.client.errors import (
    APIConnectionError,
    APIError,
    ConflictError,
    RateLimitError,
    ServerError,
    StreamError,
)
from ftui.client.transport import iter_sse, seg
from ftui.types import JobEvent

if TYPE_CHECKING:
    from ftui.client._client import Client


class _Dropped(Exception):
    """The event stream ended before the job did."""


class _FallBackToPolling(Exception):
    """The server answered the legacy stream without SSE."""


# What ``follow`` waits out and retries; anything else (401, 403, 404…) is raised.
_TRANSIENT = (APIConnectionError, ServerError, RateLimitError, ConflictError, StreamError, _Dropped)


@dataclass
class _FollowState:
    count: int = 0
    last_id: str | None = None
    seen_ids: set[str] = field(default_factory=set)


async def follow(
    c: Client, job_id: str, *, from_start: bool = True, mode: str | None = None
) -> AsyncIterator[JobEvent]:
    """See :meth:`ftui.client.Client.follow`."""
    state = _FollowState()
    cached_mode = None
    if c.cache is not None:
        cached = await c._cache_do(c.cache.events, job_id) or []
        cursor = await c._cache_do(c.cache.follow_cursor, job_id)
        cached_mode = cursor.mode if cursor else None
        state.count = len(cached)
        state.last_id = cached[-1].id if cached else None
        state.seen_ids.update(e.id for e in cached if e.id)
        if from_start:
            for event in cached:
                yield event
    if mode is None and cached_mode in ("sse", "poll"):
        mode = cached_mode  # carry on the way the cached events were read
    attempt = 0
    while True:
        try:
            caps = await c.capabilities()  # in the loop: the network may be down now
            if mode is None or (mode == "sse" and not caps["legacy"]):
                mode = "sse" if caps["legacy"] else "poll"
            source = _follow_sse(c, job_id, state) if mode == "sse" else _poll(c, job_id, state)
            async for event in source:
                attempt = 0
                yield event
            if mode == "sse":
                job = await c.jobs.retrieve(job_id)
                if not job.is_terminal:
                    raise _Dropped("the event stream ended before the job finished")
            return
        except _FallBackToPolling:
            mode = "poll"
            continue
        except _TRANSIENT as exc:
            error = exc if isinstance(exc, APIError) else APIConnectionError(str(exc))
            delay = error.retry_after
            if delay is None:
                delay = c.follow_backoff.delay(attempt)
            attempt += 1
            c._transport.notify(attempt, delay, error, f"follow {job_id}")
            await asyncio.sleep(delay)


async def _record(c: Client, job_id: str, state: _FollowState, event: JobEvent, mode: str) -> None:
    if c.cache is not None:
        await c._cache_do(c.cache.record_events, job_id, state.count, [event], mode)
    state.count += 1
    if event.id:
        state.last_id = event.id
        state.seen_ids.add(event.id)


async def _follow_sse(c: Client, job_id: str, state: _FollowState) -> AsyncIterator[JobEvent]:
    t = c._transport
    response = await t.send(
        "GET",
        f"/fine-tunes/{seg(job_id)}/events",
        params={"stream": "true"},
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=t.read_timeout(c.stream_idle_timeout),
    )
    try:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            raise _FallBackToPolling
        position = 0
        async for obj in iter_sse(response, f"event stream of {job_id}", t.redact):
            position += 1
            if position <= state.count:
                continue  # replayed history we already have
            event = JobEvent.from_api(obj)
            await _record(c, job_id, state, event, "sse")
            yield event
    finally:
        await response.aclose()


async def _poll(c: Client, job_id: str, state: _FollowState) -> AsyncIterator[JobEvent]:
    while True:
        job = await c.jobs.retrieve(job_id)  # before the events: then none can be missed
        for event in await _new_events(c, job_id, state):
            await _record(c, job_id, state, event, "poll")
            yield event
        if job.is_terminal:
            return
        await asyncio.sleep(c.poll_interval)


async def _new_events(c: Client, job_id: str, state: _FollowState) -> list[JobEvent]:
    caps = await c.capabilities()
    if not caps["current"]:
        return (await c.jobs.events(job_id))[state.count :]
    newest_first: list[JobEvent] = []
    pages = c._transport.pages(f"/fine_tuning/jobs/{seg(job_id)}/events", {"limit": 100})
    async with contextlib.aclosing(pages):
        async for data in pages:
            ids = [d.get("id") for d in data]
            if state.last_id is not None and state.last_id in ids:  # back to what we have
                newest_first += [JobEvent.from_api(d) for d in data[: ids.index(state.last_id)]]
                break
            newest_first += [JobEvent.from_api(d) for d in data]
    events = newest_first[::-1]
    if state.last_id is None and state.count:
        # Resuming from a position-only cursor (events first read over the legacy stream).
        known, events = events[: state.count], events[state.count :]
        if len(known) == state.count and known[-1].id:
            state.last_id = known[-1].id
    return [e for e in events if not e.id or e.id not in state.seen_ids]
