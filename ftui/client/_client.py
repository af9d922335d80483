"""The :class:`Client` object: one API endpoint, its dialect, its cache and its resources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ftui import dialects
from ftui.client import follow as _follow
from ftui.client.chat import Chat
from ftui.client.completions import Completions, Models
from ftui.client.errors import (
    APIError,
    APIStatusError,
    BadRequestError,
    NotFoundError,
    UnsupportedError,
)
from ftui.client.files import Files
from ftui.client.jobs import Jobs
from ftui.client.transport import Backoff, RetryNotice, Transport
from ftui.types import Dialect, Job, JobEvent

if TYPE_CHECKING:
    from ftui.cache import Cache, ProfileCache
    from ftui.config import Config, Profile

log = logging.getLogger("ftui.client")


class Client:
    """Async client for one API endpoint (one profile). Use as ``async with``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        organization: str | None = None,
        dialect: str = "auto",
        cache: ProfileCache | None = None,
        timeout: float | httpx.Timeout = 60.0,
        stream_idle_timeout: float = 120.0,
        max_retries: int = 5,
        backoff: Backoff | None = None,
        follow_backoff: Backoff | None = None,
        max_retry_after: float = 120.0,
        poll_interval: float = 1.0,
        on_retry: Callable[[RetryNotice], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        profile_name: str | None = None,
    ):
        if dialect not in ("auto", "current", "legacy"):
            raise ValueError(f"dialect must be auto, current or legacy, not {dialect!r}")
        # The key goes only into the transport's auth header and redactor.
        self._transport = Transport(
            base_url,
            api_key=api_key,
            organization=organization,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_retry_after=max_retry_after,
            on_retry=on_retry,
            transport=transport,
        )
        self.base_url = self._transport.base_url
        self.profile_name = profile_name
        self.cache = cache
        self.follow_backoff = follow_backoff or Backoff(initial=0.5, maximum=30.0)
        self.poll_interval = poll_interval
        self.stream_idle_timeout = stream_idle_timeout
        self._configured_dialect = dialect
        self._caps: dict[str, Any] | None = None
        self._caps_lock = asyncio.Lock()
        self._owned_cache: Cache | None = None
        self.files = Files(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.completions = Completions(self)
        self.chat = Chat(self)

    def __repr__(self) -> str:
        who = f" profile={self.profile_name!r}" if self.profile_name else ""
        return f"<ftui.Client{who} base_url={self.base_url!r} dialect={self._configured_dialect!r}>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._owned_cache is not None:  # opened by connect() for this client
            self._owned_cache.close()

    async def _cache_do(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run a cache call off the event loop; a cache failure never fails an API call."""
        if self.cache is None:
            return None
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except Exception as exc:  # noqa: BLE001 - the cache is best-effort by design
            log.warning("cache %s failed: %s", getattr(fn, "__name__", fn), exc)
            return None

    # -- dialect and capabilities -----------------------------------------------------------------
    async def capabilities(self) -> dict[str, Any]:
        """``{"dialect": "current"|"legacy", "current": bool, "legacy": bool}``.

        For ``auto`` both job endpoints are probed once; the answer is kept in the cache so
        later runs do not probe again. A fixed dialect is taken as given (no probe).
        """
        if self._caps is not None:
            return self._caps
        async with self._caps_lock:
            if self._caps is not None:
                return self._caps
            if self._configured_dialect != "auto":
                d = self._configured_dialect
                caps = {"dialect": d, "current": d == "current", "legacy": d == "legacy"}
            else:
                cached = None
                if self.cache is not None:
                    cached = await self._cache_do(self.cache.get_meta, "capabilities")
                caps = cached if isinstance(cached, dict) and "dialect" in cached else None
                if caps is None:
                    caps = await self._probe()
                    if self.cache is not None:
                        await self._cache_do(self.cache.set_meta, "capabilities", caps)
            self._caps = caps
            return caps

    async def _probe(self) -> dict[str, Any]:
        async def has(path: str, params: Mapping[str, Any] | None = None) -> bool:
            try:
                await self._transport.send("GET", path, params=params)
            except (NotFoundError, BadRequestError):
                return False
            except APIStatusError as exc:
                if exc.status_code == 405:
                    return False
                raise
            return True

        current = await has(dialects.CURRENT_PATH, {"limit": 1})
        legacy = await has(dialects.LEGACY_PATH)
        if not (current or legacy):
            raise UnsupportedError(
                f"{self.base_url} has neither /fine_tuning/jobs nor /fine-tunes: "
                "is base_url right (it should end in /v1)?"
            )
        return {"dialect": "current" if current else "legacy", "current": current, "legacy": legacy}

    async def dialect(self) -> Dialect:
        return (await self.capabilities())["dialect"]

    # -- watching ---------------------------------------------------------------------------------
    def follow(
        self, job_id: str, *, from_start: bool = True, mode: str | None = None
    ) -> AsyncIterator[JobEvent]:
        """Yield every event of the job exactly once, in order; end when the job is terminal.

        Uses the legacy SSE stream where the server has it (``mode="sse"``), else polls the
        events endpoint with the ``after`` cursor (``mode="poll"``). Network errors, timeouts,
        server restarts and dropped streams are retried forever with backoff and jitter,
        carrying on where it was. With a cache, events are stored before they are yielded and
        a later ``follow`` resumes from the stored cursor: ``from_start=True`` first yields the
        cached events (so the caller still sees the whole history once), ``False`` skips them.
        Authentication, permission and not-found errors are raised.
        """
        return _follow.follow(self, job_id, from_start=from_start, mode=mode)

    async def wait(self, job_id: str) -> Job:
        """Follow the job to its end (events go to the cache) and return its final state."""
        async for _ in self.follow(job_id, from_start=False):
            pass
        return await self.jobs.retrieve(job_id)


async def is_healthy(base_url: str, timeout: float = 2.0) -> bool:
    """Whether ``base_url`` answers ``GET /models`` with a model list (one try, no key)."""
    transport = Transport(base_url, timeout=timeout, max_retries=0)
    try:
        body = await transport.json("GET", "/models")
    except APIError:
        return False
    finally:
        await transport.aclose()
    return isinstance(body, Mapping) and "data" in body


async def connect(
    profile: Profile | str | None = None,
    *,
    config: Config | None = None,
    cache: Cache | bool | None = True,
    environ: Mapping[str, str] | None = None,
    **client_kwargs: Any,
) -> Client:
    """A :class:`Client` for a profile (by name, or the default one; see :mod:`ftui.config`).

    The embedded profile starts ``ftui serve`` if it is not running. ``cache=True`` opens the
    default cache file; pass a :class:`~ftui.cache.Cache` or ``None``/``False`` for none.
    """
    from ftui import config as cfg
    from ftui import local_server

    if not isinstance(profile, cfg.Profile):
        config = config or cfg.Config.load()
        profile = config.resolve(profile, environ=environ)
    if profile.is_embedded:
        base_url = await asyncio.to_thread(local_server.ensure_local_server)
    else:
        assert profile.base_url is not None
        base_url = profile.base_url
    api_key = profile.api_key(environ)
    profile_cache = owned = None
    if cache is True:
        from ftui.cache import Cache

        cache = owned = Cache()
    if cache:
        profile_cache = cache.profile(cfg.cache_namespace(profile))
    client = Client(
        base_url,
        api_key=api_key,
        organization=profile.organization,
        dialect=profile.dialect,
        cache=profile_cache,
        profile_name=profile.name,
        **client_kwargs,
    )
    client._owned_cache = owned
    return client
