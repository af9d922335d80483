"""THE async API client: the one place in ftui that talks HTTP.

One :class:`Client` per profile, over ``httpx.AsyncClient``::

    async with await connect("local") as client:
        f = await client.files.create("train.jsonl", on_progress=print)
        job = await client.jobs.create(f.id, "ada", n_epochs=1)
        async for event in client.follow(job.id):
            print(event.message)
        rows = await client.jobs.results(job.id)

Both API dialects are served by one object model (:mod:`ftui.types`): ``legacy``
(``/v1/fine-tunes``) and ``current`` (``/v1/fine_tuning/jobs``). A profile's dialect is ``auto``
(probed once, remembered in the cache), ``current`` or ``legacy``.

Retries: connect errors, and 408/409/429/5xx answers, are retried with exponential backoff and
jitter, honouring ``Retry-After``/``retry-after-ms``; timeouts and dropped connections are retried
only for requests that are safe to repeat (GET, DELETE, cancel, pause, resume), so a create is
never sent twice once the server may have acted on it. 4xx validation errors are never retried.

The API key is sent as a bearer token; it is kept out of exceptions, logs and reprs (a server
message that echoes it is redacted).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import csv
import email.utils
import io
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from ftui import __version__
from ftui.types import (
    Checkpoint,
    Completion,
    Deleted,
    Dialect,
    FileObject,
    Job,
    JobEvent,
    Model,
    ResultRow,
)

if TYPE_CHECKING:
    from ftui.cache import Cache, ProfileCache
    from ftui.config import Config, Profile

log = logging.getLogger(__name__)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "Client",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "UnsupportedError",
    "connect",
    "parse_results_csv",
]

# --- errors --------------------------------------------------------------------------------------


class APIError(Exception):
    """Any failure of an API call. ``message`` is the server's own message where it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message
        self.status_code = status_code
        self.type = type
        self.param = param
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        if self.status_code:
            return f"{self.message} (HTTP status code: {self.status_code})"
        return self.message


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class UnsupportedError(APIError):
    """The server or dialect has no such feature (e.g. pause on a legacy-only server)."""


class APIStatusError(APIError):
    """The server answered with an error status."""


class BadRequestError(APIStatusError):
    """400/415/422: the request is invalid; retrying will not help."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: no such file, job, model or route."""


class ConflictError(APIStatusError):
    """409."""


class RateLimitError(APIStatusError):
    """429."""


class ServerError(APIStatusError):
    """5xx."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}
RETRY_STATUSES = frozenset({408, 409, 429})


def _error_class(status: int) -> type[APIStatusError]:
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


# --- backoff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` waits between half and all of
    ``min(maximum, initial * factor**n)`` (``jitter`` = the fraction that is random)."""

    initial: float = 0.5
    maximum: float = 20.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt))
        return base * (1.0 - self.jitter * random.random())


@dataclass(frozen=True)
class RetryNotice:
    """Passed to ``on_retry``: what failed, which attempt this is, and how long ftui waits."""

    attempt: int
    delay: float
    error: APIError
    what: str


def _retry_after(response: httpx.Response) -> float | None:
    ms = response.headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- helpers -------------------------------------------------------------------------------------


def _seg(value: str) -> str:
    """One URL path segment (ids such as ``ada:ft-x-2024…`` contain ``:``)."""
    return quote(str(value), safe="")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _redactor(key: str | None) -> Callable[[str], str]:
    """A function that blanks ``key`` out of a text (a closure, so no attribute holds the key)."""

    def redact(text: str) -> str:
        return text.replace(key, "sk-…redacted") if key and key in text else text

    return redact


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def parse_results_csv(content: bytes | str) -> list[ResultRow]:
    """Parse a results file into rows by column name (base64-wrapped CSV is unwrapped)."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    first = text.lstrip()[:200].splitlines()[0] if text.strip() else ""
    if first and "," not in first:
        with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
            decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8-sig")
            if "," in decoded.splitlines()[0]:
                text = decoded
    return [ResultRow.from_csv(r) for r in csv.DictReader(io.StringIO(text))]


class _Dropped(Exception):
    """The event stream ended before the job did."""


class _FallBackToPolling(Exception):
    """The server answered the legacy stream without SSE."""


class _SSE:
    """Split a byte stream into ``data:`` payloads; only complete lines count."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, text: str) -> list[str]:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        out = []
        for line in lines:
            line = line.rstrip("\r")
            if line.startswith("data:"):
                data = line[5:]
                out.append(data[1:] if data.startswith(" ") else data)
        return out


@dataclass
class _FollowState:
    count: int = 0
    last_id: str | None = None
    seen_ids: set[str] = field(default_factory=set)


# --- the client ----------------------------------------------------------------------------------


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
        self.base_url = base_url.rstrip("/")
        self.profile_name = profile_name
        self.cache = cache
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.follow_backoff = follow_backoff or Backoff(initial=0.5, maximum=30.0)
        self.max_retry_after = max_retry_after
        self.poll_interval = poll_interval
        self.stream_idle_timeout = stream_idle_timeout
        self.on_retry = on_retry
        self._configured_dialect = dialect
        self._caps: dict[str, Any] | None = None
        self._caps_lock = asyncio.Lock()
        self._owned_cache: Cache | None = None
        self._redact = _redactor(api_key)  # the key lives only here and in the auth header
        headers = {"User-Agent": f"ftui/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if organization:
            headers["OpenAI-Organization"] = organization
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=self._timeout,
            transport=transport,
            trust_env=not _is_loopback(self.base_url),
        )
        self.files = Files(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.completions = Completions(self)

    def __repr__(self) -> str:
        who = f" profile={self.profile_name!r}" if self.profile_name else ""
        return f"<ftui.Client{who} base_url={self.base_url!r} dialect={self._configured_dialect!r}>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owned_cache is not None:  # opened by connect() for this client
            self._owned_cache.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _status_error(self, response: httpx.Response) -> APIStatusError:
        status = response.status_code
        message, etype, param, code = None, None, None, None
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
            err = body["error"]
            message = err.get("message")
            etype, param, code = err.get("type"), err.get("param"), err.get("code")
        if not message:
            snippet = response.text.strip()[:300] if response.content else ""
            message = f"HTTP {status} {response.reason_phrase}" + (
                f": {snippet}" if snippet else ""
            )
        return _error_class(status)(
            self._redact(str(message)),
            status_code=status,
            type=etype,
            param=param,
            code=code,
            request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
            retry_after=_retry_after(response),
        )

    def _notify(self, attempt: int, delay: float, error: APIError, what: str) -> None:
        log.info("%s failed (%s); retry %d in %.2fs", what, error, attempt, delay)
        if self.on_retry:
            self.on_retry(RetryNotice(attempt=attempt, delay=delay, error=error, what=what))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send with retries. With ``stream=True`` the response is open: close it."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE", "PUT")
        what = f"{method} {path}"
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                self._url(path),
                params=_drop_none(params) if params else None,
                json=json_body,
                content=content() if content else None,
                headers=headers,
                timeout=timeout or self._timeout,
            )
            error: APIError
            try:
                response = await self._http.send(request, stream=stream)
                if stream and response.status_code >= 400:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            except httpx.TimeoutException as exc:
                error = APITimeoutError(self._redact(f"{what}: timed out ({type(exc).__name__})"))
                retry = idempotent or isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            except httpx.TransportError as exc:
                error = APIConnectionError(self._redact(f"{what}: {type(exc).__name__}: {exc}"))
                retry = idempotent or isinstance(exc, httpx.ConnectError)
            else:
                log.debug("%s -> %s", what, response.status_code)
                if response.status_code < 400:
                    return response
                error = self._status_error(response)
                status = response.status_code
                retry = status in RETRY_STATUSES or status >= 500
                should = response.headers.get("x-should-retry")
                if should in ("true", "false"):
                    retry = should == "true"
                if error.retry_after is not None and error.retry_after > self.max_retry_after:
                    retry = False
            if not retry or attempt >= self.max_retries:
                raise error
            delay = error.retry_after
            if delay is None:
                delay = self.backoff.delay(attempt)
            attempt += 1
            self._notify(attempt, delay, error, what)
            await asyncio.sleep(delay)

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._send(method, path, **kw)
        try:
            return response.json()
        except ValueError:
            raise APIError(
                self._redact(f"{method} {path}: the server sent something that is not JSON"),
                status_code=response.status_code,
            ) from None

    async def _pages(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page's ``data`` of a list endpoint, following ``has_more`` with ``after``."""
        after = None
        while True:
            page = await self._json("GET", path, params={**(params or {}), "after": after})
            data = page.get("data") or []
            yield data
            if not page.get("has_more") or not data:
                return
            after = data[-1].get("id")

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
                await self._send("GET", path, params=params)
            except (NotFoundError, BadRequestError):
                return False
            except APIStatusError as exc:
                if exc.status_code == 405:
                    return False
                raise
            return True

        current = await has("/fine_tuning/jobs", {"limit": 1})
        legacy = await has("/fine-tunes")
        if not (current or legacy):
            raise UnsupportedError(
                f"{self.base_url} has neither /fine_tuning/jobs nor /fine-tunes: "
                "is base_url right (it should end in /v1)?"
            )
        return {"dialect": "current" if current else "legacy", "current": current, "legacy": legacy}

    async def dialect(self) -> Dialect:
        return (await self.capabilities())["dialect"]

    # -- follow ----------------------------------------------------------------------------------
    async def follow(
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
        state = _FollowState()
        cached_mode = None
        if self.cache is not None:
            cached = await self._cache_do(self.cache.events, job_id) or []
            cursor = await self._cache_do(self.cache.follow_cursor, job_id)
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
                caps = await self.capabilities()  # in the loop: the network may be down now
                if mode is None or (mode == "sse" and not caps["legacy"]):
                    mode = "sse" if caps["legacy"] else "poll"
                source = (
                    self._follow_sse(job_id, state)
                    if mode == "sse"
                    else self._follow_poll(job_id, state)
                )
                async for event in source:
                    attempt = 0
                    yield event
                if mode == "sse":
                    job = await self.jobs.retrieve(job_id)
                    if not job.is_terminal:
                        raise _Dropped("the event stream ended before the job finished")
                return
            except _FallBackToPolling:
                mode = "poll"
                continue
            except (
                APIConnectionError,
                ServerError,
                RateLimitError,
                ConflictError,
                _Dropped,
            ) as exc:
                error = exc if isinstance(exc, APIError) else APIConnectionError(str(exc))
                delay = error.retry_after
                if delay is None:
                    delay = self.follow_backoff.delay(attempt)
                attempt += 1
                self._notify(attempt, delay, error, f"follow {job_id}")
                await asyncio.sleep(delay)

    async def _record(self, job_id: str, state: _FollowState, event: JobEvent, mode: str) -> None:
        if self.cache is not None:
            await self._cache_do(self.cache.record_events, job_id, state.count, [event], mode)
        state.count += 1
        if event.id:
            state.last_id = event.id
            state.seen_ids.add(event.id)

    async def _follow_sse(self, job_id: str, state: _FollowState) -> AsyncIterator[JobEvent]:
        timeout = httpx.Timeout(
            connect=self._timeout.connect,
            read=self.stream_idle_timeout,
            write=self._timeout.write,
            pool=self._timeout.pool,
        )
        response = await self._send(
            "GET",
            f"/fine-tunes/{_seg(job_id)}/events",
            params={"stream": "true"},
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=timeout,
        )
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                raise _FallBackToPolling
            parser = _SSE()
            position = 0
            try:
                async for chunk in response.aiter_text():
                    for data in parser.feed(chunk):
                        if data.strip() == "[DONE]":
                            return
                        try:
                            obj = json.loads(data)
                        except ValueError:
                            raise _Dropped("a malformed event line") from None
                        if isinstance(obj, Mapping) and "error" in obj:
                            err = obj["error"] if isinstance(obj["error"], Mapping) else {}
                            raise ServerError(
                                self._redact(str(err.get("message") or obj["error"]))
                                + " (error while streaming)",
                                type=err.get("type"),
                                code=err.get("code"),
                            )
                        position += 1
                        if position <= state.count:
                            continue  # replayed history we already have
                        event = JobEvent.from_api(obj)
                        await self._record(job_id, state, event, "sse")
                        yield event
            except httpx.TimeoutException as exc:
                raise APITimeoutError(f"event stream of {job_id} went silent ({exc})") from None
            except httpx.TransportError as exc:
                raise APIConnectionError(
                    f"event stream of {job_id} broke: {type(exc).__name__}"
                ) from None
            raise _Dropped("the event stream ended without [DONE]")
        finally:
            await response.aclose()

    async def _follow_poll(self, job_id: str, state: _FollowState) -> AsyncIterator[JobEvent]:
        while True:
            job = await self.jobs.retrieve(job_id)  # before the events: then none can be missed
            for event in await self._new_events(job_id, state):
                await self._record(job_id, state, event, "poll")
                yield event
            if job.is_terminal:
                return
            await asyncio.sleep(self.poll_interval)

    async def _new_events(self, job_id: str, state: _FollowState) -> list[JobEvent]:
        caps = await self.capabilities()
        if not caps["current"]:
            return (await self.jobs.events(job_id))[state.count :]
        newest_first: list[JobEvent] = []
        pages = self._pages(f"/fine_tuning/jobs/{_seg(job_id)}/events", {"limit": 100})
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

    async def wait(self, job_id: str) -> Job:
        """Follow the job to its end (events go to the cache) and return its final state."""
        async for _ in self.follow(job_id, from_start=False):
            pass
        return await self.jobs.retrieve(job_id)


# --- resources -----------------------------------------------------------------------------------


class _Resource:
    def __init__(self, client: Client):
        self._c = client


class Files(_Resource):
    CHUNK = 1 << 20

    async def list(self, purpose: str | None = None) -> list[FileObject]:
        """All files, newest first (every page)."""
        out = [
            FileObject.from_api(d)
            async for data in self._c._pages("/files", {"purpose": purpose})
            for d in data
        ]
        out.sort(key=lambda f: f.created_at or 0, reverse=True)
        if self._c.cache is not None and purpose is None:
            await self._c._cache_do(self._c.cache.put_files, out, complete=True)
        return out

    async def create(
        self,
        path: str | os.PathLike[str],
        purpose: str = "fine-tune",
        *,
        filename: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> FileObject:
        """Upload a file, streamed from disk (any size; memory stays at one chunk).

        ``on_progress(sent, total)`` is called as bytes go out (it starts again from 0 if the
        upload has to be retried after a connect error or a 429/5xx answer).
        """
        path = Path(path)
        size = path.stat().st_size
        name = filename or path.name
        boundary = uuid.uuid4().hex
        safe = name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{safe}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        total = len(head) + size + len(tail)

        async def body() -> AsyncIterator[bytes]:
            sent = 0

            def progress(n: int) -> None:
                nonlocal sent
                sent += n
                if on_progress:
                    on_progress(min(sent, total), total)

            yield head
            progress(len(head))
            with open(path, "rb") as fh:
                remaining = size
                while remaining > 0:
                    chunk = await asyncio.to_thread(fh.read, min(self.CHUNK, remaining))
                    if not chunk:
                        raise APIError(f"{path} shrank while it was being uploaded")
                    remaining -= len(chunk)
                    yield chunk
                    progress(len(chunk))
            yield tail
            progress(len(tail))

        data = await self._c._json(
            "POST",
            "/files",
            content=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(total),
            },
            idempotent=False,
        )
        f = FileObject.from_api(data)
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_files, [f])
        return f

    async def retrieve(self, file_id: str) -> FileObject:
        return FileObject.from_api(await self._c._json("GET", f"/files/{_seg(file_id)}"))

    async def content(self, file_id: str, path: str | os.PathLike[str] | None = None) -> Any:
        """The file's bytes; or, with ``path``, streamed to that file (atomically) → Path."""
        if path is None:
            response = await self._c._send("GET", f"/files/{_seg(file_id)}/content")
            return response.content
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        attempt = 0
        try:
            while True:
                response = await self._c._send(
                    "GET", f"/files/{_seg(file_id)}/content", stream=True
                )
                try:
                    with open(tmp, "wb") as fh:
                        async for chunk in response.aiter_bytes(self.CHUNK):
                            await asyncio.to_thread(fh.write, chunk)
                    break
                except httpx.TransportError as exc:
                    error = APIConnectionError(f"download of {file_id} broke: {type(exc).__name__}")
                    if attempt >= self._c.max_retries:
                        raise error from None
                    delay = self._c.backoff.delay(attempt)
                    attempt += 1
                    self._c._notify(attempt, delay, error, f"download {file_id}")
                    await asyncio.sleep(delay)
                finally:
                    await response.aclose()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        return target

    async def head(self, file_id: str, limit: int = 64 << 10) -> tuple[bytes, bool]:
        """The first ``limit`` bytes of a file and whether there is more (for previews).

        Reading stops once it has enough, so a preview of a file of several GB costs ``limit``.
        """
        response = await self._c._send("GET", f"/files/{_seg(file_id)}/content", stream=True)
        buf = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                buf += chunk
                if len(buf) > limit:
                    break
        except httpx.TransportError as exc:
            raise APIConnectionError(f"reading {file_id} broke: {type(exc).__name__}") from None
        finally:
            await response.aclose()
        return bytes(buf[:limit]), len(buf) > limit

    async def delete(self, file_id: str) -> Deleted:
        result = Deleted.from_api(await self._c._json("DELETE", f"/files/{_seg(file_id)}"))
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.remove_file, file_id)
        return result


LEGACY_ONLY_OPTIONS = (
    "prompt_loss_weight",
    "compute_classification_metrics",
    "classification_n_classes",
    "classification_positive_class",
    "classification_betas",
)


class Jobs(_Resource):
    async def _cache_job(self, job: Job) -> Job:
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_job, job)
        return job

    async def _base(self) -> str:
        return "/fine_tuning/jobs" if await self._c.dialect() == "current" else "/fine-tunes"

    async def list(self) -> list[Job]:
        """All jobs (every page), newest first, in either dialect."""
        c = self._c
        if await c.dialect() == "current":
            jobs = [
                Job.from_api(d)
                async for data in c._pages("/fine_tuning/jobs", {"limit": 100})
                for d in data
            ]
        else:
            page = await c._json("GET", "/fine-tunes")
            jobs = [Job.from_api(d) for d in reversed(page.get("data") or [])]
        jobs.sort(key=lambda j: j.created_at or 0, reverse=True)  # stable: keeps server order
        if c.cache is not None:
            await c._cache_do(c.cache.put_jobs, jobs, complete=True)
        return jobs

    async def create(
        self,
        training_file: str,
        model: str,
        *,
        validation_file: str | None = None,
        n_epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate_multiplier: float | None = None,
        prompt_loss_weight: float | None = None,
        compute_classification_metrics: bool | None = None,
        classification_n_classes: int | None = None,
        classification_positive_class: str | None = None,
        classification_betas: Sequence[float] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Job:
        """Create a job. Unset options are left to the server's defaults.

        The legacy-only options (prompt loss weight, classification metrics) go to the legacy
        endpoint even on a current-dialect profile when the server has it; otherwise they raise
        :class:`UnsupportedError`. ``extra`` is merged into the body as is.
        """
        c = self._c
        caps = await c.capabilities()
        legacy_opts = {
            "prompt_loss_weight": prompt_loss_weight,
            "compute_classification_metrics": compute_classification_metrics or None,
            "classification_n_classes": classification_n_classes,
            "classification_positive_class": classification_positive_class,
            "classification_betas": list(classification_betas) if classification_betas else None,
        }
        wants_legacy = any(v is not None for v in legacy_opts.values())
        use_legacy = caps["dialect"] == "legacy" or (wants_legacy and caps["legacy"])
        if wants_legacy and not use_legacy:
            named = ", ".join(k for k, v in legacy_opts.items() if v is not None)
            raise UnsupportedError(
                f"{named}: only the legacy /v1/fine-tunes API has these, and {c.base_url} "
                "does not offer it"
            )
        hyper = {
            "n_epochs": n_epochs,
            "batch_size": batch_size,
            "learning_rate_multiplier": learning_rate_multiplier,
        }
        if use_legacy:
            body = _drop_none(
                {
                    "training_file": training_file,
                    "validation_file": validation_file,
                    "model": model,
                    **hyper,
                    **legacy_opts,
                    "suffix": suffix,
                    "seed": seed,
                }
            )
            path = "/fine-tunes"
        else:
            body = _drop_none(
                {
                    "training_file": training_file,
                    "validation_file": validation_file,
                    "model": model,
                    "hyperparameters": _drop_none(hyper) or None,
                    "suffix": suffix,
                    "seed": seed,
                }
            )
            path = "/fine_tuning/jobs"
        body.update(extra or {})
        data = await c._json("POST", path, json_body=body, idempotent=False)
        return await self._cache_job(Job.from_api(data))

    async def retrieve(self, job_id: str) -> Job:
        data = await self._c._json("GET", f"{await self._base()}/{_seg(job_id)}")
        return await self._cache_job(Job.from_api(data))

    async def cancel(self, job_id: str) -> Job:
        data = await self._c._json(
            "POST", f"{await self._base()}/{_seg(job_id)}/cancel", idempotent=True
        )
        return await self._cache_job(Job.from_api(data))

    async def _current_only(self, job_id: str, action: str) -> Any:
        caps = await self._c.capabilities()
        if not caps["current"]:
            raise UnsupportedError(
                f"{action}: only the current /v1/fine_tuning/jobs API has it, and "
                f"{self._c.base_url} is used with the legacy dialect"
            )
        return f"/fine_tuning/jobs/{_seg(job_id)}/{action}"

    async def pause(self, job_id: str) -> Job:
        path = await self._current_only(job_id, "pause")
        return await self._cache_job(
            Job.from_api(await self._c._json("POST", path, idempotent=True))
        )

    async def resume(self, job_id: str) -> Job:
        path = await self._current_only(job_id, "resume")
        return await self._cache_job(
            Job.from_api(await self._c._json("POST", path, idempotent=True))
        )

    async def events(self, job_id: str) -> list[JobEvent]:
        """All events of the job, oldest first (every page)."""
        c = self._c
        if await c.dialect() == "current":
            path = f"/fine_tuning/jobs/{_seg(job_id)}/events"
            newest_first = [d async for data in c._pages(path, {"limit": 100}) for d in data]
            return [JobEvent.from_api(d) for d in reversed(newest_first)]
        page = await c._json("GET", f"/fine-tunes/{_seg(job_id)}/events")
        return [JobEvent.from_api(d) for d in page.get("data") or []]

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """All checkpoints of the job (every page), in the server's order."""
        path = await self._current_only(job_id, "checkpoints")
        return [
            Checkpoint.from_api(d)
            async for data in self._c._pages(path, {"limit": 100})
            for d in data
        ]

    async def results_file(self, job_id: str) -> str:
        """The id of the job's results file; :class:`NotFoundError` if it has none yet."""
        job = await self.retrieve(job_id)
        if not job.result_files:
            raise NotFoundError(
                f"no results file for {job_id} (status: {job.status})", status_code=None
            )
        return job.result_files[0]

    async def results(self, job_id: str) -> list[ResultRow]:
        """The results CSV of a finished job, parsed into rows by column name."""
        content = await self._c.files.content(await self.results_file(job_id))
        rows = parse_results_csv(content)
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_results, job_id, rows)
        return rows


class Models(_Resource):
    async def list(self) -> list[Model]:
        data = await self._c._json("GET", "/models")
        models = [Model.from_api(d) for d in data.get("data") or []]
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_models, models, complete=True)
        return models

    async def retrieve(self, model: str) -> Model:
        return Model.from_api(await self._c._json("GET", f"/models/{_seg(model)}"))

    async def delete(self, model: str) -> Deleted:
        result = Deleted.from_api(await self._c._json("DELETE", f"/models/{_seg(model)}"))
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.remove_model, model)
        return result


class Completions(_Resource):
    @staticmethod
    def _body(model: str, prompt: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        body = {"model": model, "prompt": prompt}
        extra = params.get("extra") or {}
        for key, value in params.items():
            if key != "extra" and value is not None:
                body[key] = list(value) if key == "stop" and not isinstance(value, str) else value
        body.update(extra)
        return body

    async def create(
        self,
        model: str,
        prompt: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
        *,
        suffix: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        logprobs: int | None = None,
        echo: bool | None = None,
        stop: str | Sequence[str] | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        best_of: int | None = None,
        logit_bias: Mapping[str, float] | None = None,
        user: str | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """``POST /completions``; unset parameters are left to the server's defaults."""
        params = dict(locals())
        del params["self"], params["model"], params["prompt"]
        body = self._body(model, prompt, params)
        data = await self._c._json("POST", "/completions", json_body=body, idempotent=True)
        return Completion.from_api(data)

    async def stream(
        self,
        model: str,
        prompt: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
        *,
        suffix: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        logprobs: int | None = None,
        echo: bool | None = None,
        stop: str | Sequence[str] | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, float] | None = None,
        user: str | None = None,
        seed: int | None = None,
        include_usage: bool | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Completion]:
        """Stream a completion: yields chunks (same shape as a completion) as they arrive.

        The stream is not restarted after it breaks mid-way (that would repeat text): the
        break is raised as :class:`APIConnectionError`.
        """
        params = dict(locals())
        del params["self"], params["model"], params["prompt"], params["include_usage"]
        body = self._body(model, prompt, params)
        body["stream"] = True
        if include_usage is not None:
            body["stream_options"] = {"include_usage": include_usage}
        response = await self._c._send(
            "POST",
            "/completions",
            json_body=body,
            headers={"Accept": "text/event-stream"},
            stream=True,
            idempotent=False,
        )
        try:
            parser = _SSE()
            try:
                async for text in response.aiter_text():
                    for data in parser.feed(text):
                        if data.strip() == "[DONE]":
                            return
                        try:
                            obj = json.loads(data)
                        except ValueError:
                            raise APIError(f"a malformed completion chunk: {data[:80]!r}") from None
                        if isinstance(obj, Mapping) and "error" in obj:
                            err = obj["error"] if isinstance(obj["error"], Mapping) else {}
                            raise APIError(
                                self._c._redact(str(err.get("message") or obj["error"]))
                                + " (error while streaming)",
                                type=err.get("type"),
                                code=err.get("code"),
                            )
                        yield Completion.from_api(obj)
            except httpx.TransportError as exc:
                raise APIConnectionError(f"completion stream broke: {type(exc).__name__}") from None
            raise APIConnectionError("completion stream ended without [DONE]")
        finally:
            await response.aclose()


# --- construction from a profile -----------------------------------------------------------------


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

    if not isinstance(profile, cfg.Profile):
        config = config or cfg.Config.load()
        profile = config.resolve(profile, environ=environ)
    if profile.is_embedded:
        base_url = await asyncio.to_thread(cfg.ensure_local_server)
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
