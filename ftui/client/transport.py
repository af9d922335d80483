"""The one HTTP transport: requests with retries, backoff and ``Retry-After``; one SSE reader.

Retries: connect errors, and 408/409/429/5xx answers, are retried with exponential backoff and
jitter, honouring ``Retry-After``/``retry-after-ms``; timeouts and dropped connections are retried
only for requests that are safe to repeat (GET, DELETE, cancel, pause, resume), so a create is
never sent twice once the server may have acted on it. 4xx validation errors are never retried.

The API key lives only in the ``Authorization`` header of the httpx client and in the redactor's
closure; a server message that echoes it is blanked out before it reaches an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ftui import __version__
from ftui.client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    StreamError,
    error_class,
)
from ftui.loopback import is_loopback_host

log = logging.getLogger("ftui.client")

RETRY_STATUSES = frozenset({408, 409, 429})


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


def retry_after(response: httpx.Response) -> float | None:
    """The wait the server asked for (``retry-after-ms``, or ``Retry-After`` in s or a date)."""
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


def seg(value: str) -> str:
    """One URL path segment (ids such as ``ada:ft-x-2024…`` contain ``:``)."""
    return quote(str(value), safe="")


def is_loopback(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def redactor(key: str | None) -> Callable[[str], str]:
    """A function that blanks ``key`` out of a text (a closure, so no attribute holds the key)."""

    def redact(text: str) -> str:
        return text.replace(key, "sk-…redacted") if key and key in text else text

    return redact


def drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class Transport:
    """One API endpoint over ``httpx.AsyncClient``: send with retries, decode errors."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        organization: str | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 5,
        backoff: Backoff | None = None,
        max_retry_after: float = 120.0,
        on_retry: Callable[[RetryNotice], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.max_retry_after = max_retry_after
        self.on_retry = on_retry
        self.redact = redactor(api_key)
        headers = {"User-Agent": f"ftui/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if organization:
            headers["OpenAI-Organization"] = organization
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=self.timeout,
            transport=transport,
            trust_env=not is_loopback(self.base_url),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def read_timeout(self, read: float) -> httpx.Timeout:
        """This transport's timeouts with another read timeout (for long-lived streams)."""
        t = self.timeout
        return httpx.Timeout(connect=t.connect, read=read, write=t.write, pool=t.pool)

    def status_error(self, response: httpx.Response) -> APIStatusError:
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
        return error_class(status)(
            self.redact(str(message)),
            status_code=status,
            type=etype,
            param=param,
            code=code,
            request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
            retry_after=retry_after(response),
        )

    def notify(self, attempt: int, delay: float, error: APIError, what: str) -> None:
        log.info("%s failed (%s); retry %d in %.2fs", what, error, attempt, delay)
        if self.on_retry:
            self.on_retry(RetryNotice(attempt=attempt, delay=delay, error=error, what=what))

    async def send(
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
                f"{self.base_url}{path}",
                params=drop_none(params) if params else None,
                json=json_body,
                content=content() if content else None,
                headers=headers,
                timeout=timeout or self.timeout,
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
                error = APITimeoutError(self.redact(f"{what}: timed out ({type(exc).__name__})"))
                retry = idempotent or isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            except httpx.TransportError as exc:
                error = APIConnectionError(self.redact(f"{what}: {type(exc).__name__}: {exc}"))
                retry = idempotent or isinstance(exc, httpx.ConnectError)
            else:
                log.debug("%s -> %s", what, response.status_code)
                if response.status_code < 400:
                    return response
                error = self.status_error(response)
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
            self.notify(attempt, delay, error, what)
            await asyncio.sleep(delay)

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self.send(method, path, **kw)
        try:
            return response.json()
        except ValueError:
            raise APIError(
                self.redact(f"{method} {path}: the server sent something that is not JSON"),
                status_code=response.status_code,
            ) from None

    async def pages(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page's ``data`` of a list endpoint, following ``has_more`` with ``after``."""
        after = None
        while True:
            page = await self.json("GET", path, params={**(params or {}), "after": after})
            data = page.get("data") or []
            yield data
            if not page.get("has_more") or not data:
                return
            after = data[-1].get("id")


class _SSELines:
    """Split a text stream into ``data:`` payloads; only complete lines count."""

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


async def iter_sse(
    response: httpx.Response, what: str, redact: Callable[[str], str] = str
) -> AsyncIterator[Any]:
    """Each ``data:`` payload of an open event-stream response, decoded as JSON, until ``[DONE]``.

    ``what`` names the stream in errors. Raises :class:`StreamError` for an error event
    (``{"error": …}``, its message passed through ``redact``) or a payload that is not JSON;
    :class:`APITimeoutError` when the stream stays silent past the read timeout;
    :class:`APIConnectionError` when it breaks or ends without ``[DONE]``. The caller closes
    the response.
    """
    lines = _SSELines()
    try:
        async for text in response.aiter_text():
            for data in lines.feed(text):
                if data.strip() == "[DONE]":
                    return
                try:
                    obj = json.loads(data)
                except ValueError:
                    raise StreamError(f"{what}: a malformed event: {data[:80]!r}") from None
                if isinstance(obj, Mapping) and "error" in obj:
                    err = obj["error"] if isinstance(obj["error"], Mapping) else {}
                    message = redact(str(err.get("message") or obj["error"]))
                    raise StreamError(
                        f"{message} (error while streaming)",
                        type=err.get("type"),
                        code=err.get("code"),
                    )
                yield obj
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"{what} went silent ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise APIConnectionError(f"{what} broke: {type(exc).__name__}") from None
    raise APIConnectionError(f"{what} ended without [DONE]")
