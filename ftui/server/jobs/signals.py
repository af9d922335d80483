"""Wake-ups for code that waits on a job's new events (the legacy SSE stream)."""

from __future__ import annotations

import asyncio


class JobSignals:
    """One asyncio.Event per job, replaced after each notify.

    Take the waiter *before* reading the store: an event stored after the read then still
    wakes the waiter, so nothing is missed between reading and waiting.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def waiter(self, job_id: str) -> asyncio.Event:
        return self._events.setdefault(job_id, asyncio.Event())

    def notify(self, job_id: str) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()
