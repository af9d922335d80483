"""The jobs of the active profile, kept current: the store, the poller and the live watchers.

No Textual here (the app wires it in; a test can drive it with a real client and no Pilot).
The :class:`JobFeed` lists the jobs at start and every ``FULL_LIST_EVERY`` seconds, retrieves
the active ones every ``POLL_INTERVAL``, asks about the newest job every ``IDLE_INTERVAL`` when
nothing runs (one cheap request tells whether the server is there), and follows each running
job (up to ``MAX_WATCHED``) for its progress. What it learns goes to a :class:`FeedListener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from ftui.types import Job

if TYPE_CHECKING:
    from ftui.client import Client

#: How often active jobs are polled, how often the server is checked when nothing runs, and how
#: often the whole list is fetched again.
POLL_INTERVAL = 2.0
IDLE_INTERVAL = 15.0
FULL_LIST_EVERY = 60.0
#: At most this many running jobs are followed for live progress at once.
MAX_WATCHED = 8


class JobStore:
    """The jobs of the active profile, newest first: the cache's list, then the server's."""

    def __init__(self, jobs: Iterable[Job] = ()):
        self._jobs: dict[str, Job] = {}
        self._sorted: list[Job] | None = None
        self.replace(jobs)

    def replace(self, jobs: Iterable[Job]) -> None:
        self._jobs = {j.id: j for j in jobs}
        self._sorted = None

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        """Every job, newest first (a new list each time; the sort is kept until a change)."""
        if self._sorted is None:
            self._sorted = sorted(
                self._jobs.values(), key=lambda j: j.created_at or 0, reverse=True
            )
        return list(self._sorted)

    def active(self) -> list[Job]:
        return [j for j in self._jobs.values() if not j.is_terminal]

    def update(self, jobs: Iterable[Job], *, complete: bool = False) -> list[tuple[Job, str]]:
        """Merge jobs in; return ``(job, old_status)`` for each job whose state changed."""
        changes: list[tuple[Job, str]] = []
        fresh = {j.id: j for j in jobs}
        for job in fresh.values():
            old = self._jobs.get(job.id)
            # by state: validating_files → queued is one "pending" to a person watching
            if old is not None and old.state != job.state:
                changes.append((job, old.status))
        if complete:
            self._jobs = fresh
        else:
            self._jobs.update(fresh)
        self._sorted = None
        return changes


class FeedListener(Protocol):
    """Where the feed's news goes (the app). Called on the event loop, never from a thread."""

    def jobs_updated(self, changes: list[tuple[Job, str]]) -> None:
        """The store changed; ``changes`` are status changes seen while ftui is open."""

    def job_progress(self, job_id: str, step: int, total: int | None) -> None: ...

    def reachable(self) -> None: ...

    def unreachable(self, reason: str) -> None: ...

    def poll_failed(self, error: BaseException) -> None:
        """A refresh failed for another reason than the connection (the server's message)."""


class JobFeed:
    """Keeps :attr:`store` current from the server; see the module docstring."""

    def __init__(
        self,
        api: Callable[[], Awaitable[Client]],
        listener: FeedListener,
        jobs: Iterable[Job] = (),
    ) -> None:
        self.api = api
        self.listener = listener
        self.store = JobStore(jobs)
        self.generation = 0  # a new profile starts a new one: late answers of the old are dropped
        self.baseline = False  # True once the server's list has been seen for this profile
        self._last_full_list = 0.0
        self._poke: asyncio.Event | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, maybe not finished yet

    # -- control ---------------------------------------------------------------------------------
    def poke(self) -> None:
        """Ask for a fresh full job list now."""
        self._last_full_list = 0.0
        self.poke_soon()

    def poke_soon(self) -> None:
        """Poll now (the active jobs, or the full list when it is due)."""
        if self._poke is not None:
            self._poke.set()

    def reset(self, jobs: Iterable[Job]) -> None:
        """Another profile: its cached jobs, no watchers, and the server's list still to come."""
        self.generation += 1
        self.baseline = False
        self.stop_watching()
        self.store.replace(jobs)

    def stop_watching(self) -> None:
        for task in self._watchers.values():
            task.cancel()
            self._stopping.add(task)
        self._watchers.clear()

    async def aclose(self) -> None:
        """Stop the watchers and wait until they have stopped."""
        self.stop_watching()
        stopping, self._stopping = self._stopping, set()
        await asyncio.gather(*stopping, return_exceptions=True)

    def apply(self, jobs: list[Job], *, complete: bool = False) -> None:
        """Merge what the server said; follow the running jobs; tell the listener."""
        changes = self.store.update(jobs, complete=complete)
        for job in jobs:
            if job.state == "running":
                self._ensure_watch(job.id)
        self.listener.jobs_updated(changes if self.baseline else [])

    # -- the poller ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Poll forever (the app runs this in a worker; cancelling it stops the feed)."""
        from ftui.client import APIConnectionError, APIError

        self._poke = asyncio.Event()
        try:
            while True:
                wait = POLL_INTERVAL
                try:
                    await self._poll_once()
                    if not self.store.active():
                        wait = IDLE_INTERVAL
                except APIConnectionError as exc:
                    self.listener.unreachable(str(exc))
                except APIError as exc:
                    self.listener.poll_failed(exc)
                    wait = FULL_LIST_EVERY / 4
                except Exception as exc:  # noqa: BLE001 - the poller must outlive any surprise
                    self.listener.poll_failed(exc)
                    wait = FULL_LIST_EVERY / 4
                self._poke.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), wait)
        finally:
            self.stop_watching()

    async def _poll_once(self) -> None:
        generation = self.generation
        client = await self.api()
        full = time.monotonic() - self._last_full_list >= FULL_LIST_EVERY
        active = self.store.active()
        if full or not self.baseline:
            jobs = await client.jobs.list()
            self._last_full_list = time.monotonic()
            if generation == self.generation:
                self.apply(jobs, complete=True)
        elif active:
            for job in active:
                fresh = await client.jobs.retrieve(job.id)
                if generation != self.generation:
                    break
                self.apply([fresh])
        else:  # nothing runs: one cheap request tells whether the server is there
            newest = self.store.all()[:1]
            if newest:
                self.apply([await client.jobs.retrieve(newest[0].id)])
            else:
                self.apply(await client.jobs.list(), complete=True)
        if generation == self.generation:
            self.listener.reachable()
            self.baseline = True

    # -- watchers --------------------------------------------------------------------------------
    def _ensure_watch(self, job_id: str) -> None:
        if job_id in self._watchers or len(self._watchers) >= MAX_WATCHED:
            return
        task = asyncio.get_running_loop().create_task(self._watch(job_id))
        self._watchers[job_id] = task
        task.add_done_callback(self._watch_ended)

    def _watch_ended(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        for job_id, running in list(self._watchers.items()):
            if running is task:
                del self._watchers[job_id]

    async def _watch(self, job_id: str) -> None:
        """Follow a running job for its progress; when its events end, poll its final state."""
        generation = self.generation
        try:
            client = await self.api()
            async for event in client.follow(job_id, from_start=False, mode="poll"):
                if generation != self.generation:
                    return
                data = event.data or {}
                step, total = data.get("step"), data.get("total_steps")
                if isinstance(step, int) and event.type == "metrics":
                    self.listener.job_progress(
                        job_id, step, total if isinstance(total, int) else None
                    )
                self.listener.reachable()
        except Exception:  # noqa: BLE001 - progress is a bonus: the poller reports the errors
            return
        self.poke_soon()
