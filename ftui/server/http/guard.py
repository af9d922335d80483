"""The HTTP edge of `ftui serve`: what every request passes before a route sees it.

In order: the Host header (DNS rebinding), the Origin header (cross-site requests from a browser,
CORS preflights), the API key, the content type of a state-changing request with a body
(a browser can send text/plain or a form to any address without asking first), the size of the
body (checked from Content-Length before reading, and counted while it streams) and how long
the client may pause while sending it. Every refusal is an OpenAI-shaped error; every response
gets `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import socket
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ftui.loopback import is_loopback_host
from ftui.server.http.errors import APIError, shorten
from ftui.server.http.views import dumps

MIB = 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES = 1 * MIB
DEFAULT_MAX_UPLOAD_BYTES = 512 * MIB
DEFAULT_REQUEST_TIMEOUT = 30.0
# After refusing a body, keep reading (and dropping) what the client still sends for this
# long before closing, as nginx's lingering close does: closing a socket with unread data makes
# the kernel send a reset, and the client would lose the answer it has not read yet.
LINGER_SECONDS = 10.0
LINGER_IDLE_SECONDS = 2.0
# Multipart framing around an upload's file: boundaries, part headers, the purpose field.
MULTIPART_SLACK_BYTES = 64 * 1024
UPLOAD_PATH = "/v1/files"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_MAX_AGE = "600"


@dataclass(frozen=True)
class EdgeConfig:
    """What the guard accepts; `ftui serve` fills it from its options."""

    api_key: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)  # lower case; "*": any
    allowed_origins: frozenset[str] = field(default_factory=frozenset)  # lower case; "*": any
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    @classmethod
    def for_bind(
        cls,
        host: str,
        *,
        extra_hosts: tuple[str, ...] = (),
        origins: tuple[str, ...] = (),
        **kwargs,
    ) -> EdgeConfig:
        """Names a server bound to `host` answers to: loopback names, the bound address, the
        machine's name when it listens beyond loopback, and whatever the user added."""
        hosts = set(LOOPBACK_NAMES) | {_normal_host(h) for h in extra_hosts}
        if host:
            hosts.add(_normal_host(host))
        if not is_loopback_host(host):
            hosts.add(socket.gethostname().lower())
        return cls(
            allowed_hosts=frozenset(hosts),
            allowed_origins=frozenset(o.strip().rstrip("/").lower() for o in origins),
            **kwargs,
        )

    def host_allowed(self, host_header: str) -> bool:
        name = _host_name(host_header)
        if "*" in self.allowed_hosts or name in self.allowed_hosts:
            return True
        # DNS rebinding needs a name the attacker's DNS answers for; an address typed as an
        # address is what the client really connected to.
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin.lower() in self.allowed_origins

    def body_limit(self, method: str, path: str) -> int:
        if method == "POST" and path == UPLOAD_PATH:
            return self.max_upload_bytes + MULTIPART_SLACK_BYTES
        return self.max_request_bytes


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _host_name(host_header: str) -> str:
    """`example.com:8321` → `example.com`; `[::1]:8321` → `::1`."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def acceptable_body_type(content_type: str) -> bool:
    media = _media_type(content_type)
    return media == "application/json" or media.endswith("+json") or media == "multipart/form-data"


def megabytes(n: int) -> str:
    return f"{n / MIB:g} MiB"


class GuardMiddleware:
    def __init__(self, app: ASGIApp, config: EdgeConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        exchange = _Exchange(self.config, scope, receive, send)
        error = exchange.refusal()
        if error is not None:
            return await exchange.answer(error, linger=exchange.has_body)
        if exchange.is_preflight:
            return await exchange.preflight()
        await self.app(scope, exchange.receive, exchange.send)


class _Exchange:
    """One request as the guard sees it: its headers, and the receive/send the route gets."""

    def __init__(self, config: EdgeConfig, scope: Scope, receive: Receive, send: Send) -> None:
        self.config = config
        self.scope = scope
        self._receive = receive
        self._send = send
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.method: str = scope["method"]
        self.limit = config.body_limit(self.method, scope["path"])
        length = self.headers.get("content-length", "").strip()
        self.declared = int(length) if length.isdigit() else None
        chunked = "transfer-encoding" in self.headers
        self.has_body = chunked or bool(self.declared)
        self.origin = self.headers.get("origin")
        # A configured cross-origin caller gets CORS approval on every answer; the same origin
        # (a page served from this very host and port) needs none.
        self.cors_origin = (
            self.origin if self.origin is not None and config.origin_allowed(self.origin) else None
        )
        self.is_preflight = (
            self.method == "OPTIONS"
            and self.origin is not None
            and "access-control-request-method" in self.headers
        )
        self.received = 0
        self.body_done = not self.has_body
        self.started = False  # a response has begun (by the route or by the guard)
        self.answered = False  # the guard answered; what the route sends is dropped

    # --- the checks, in order ---------------------------------------------------------------
    def refusal(self) -> APIError | None:
        host = self.headers.get("host")
        if host is not None and not self.config.host_allowed(host):
            return APIError(
                400,
                f"Invalid Host header: {shorten(repr(host))}. This server answers to localhost, "
                "its loopback and bound addresses, and the names given with --allowed-host.",
                code="invalid_host",
            )
        if self.origin is not None and self.cors_origin is None and not self._same_origin(host):
            return APIError(
                403,
                f"Requests from the web origin {shorten(repr(self.origin))} are not allowed. "
                "Start the server with --allowed-origin ORIGIN to let pages of that origin "
                "call it.",
                code="origin_not_allowed",
            )
        if self.is_preflight:
            return None
        if self.config.api_key is not None:
            error = self._auth_error()
            if error is not None:
                return error
        if self.method in STATE_CHANGING and self.has_body:
            content_type = self.headers.get("content-type", "")
            if not acceptable_body_type(content_type):
                shown = repr(shorten(content_type, 60)) if content_type else "none"
                return APIError(
                    415,
                    f"Unsupported Content-Type: {shown}. Send JSON with Content-Type: "
                    "application/json (uploads: multipart/form-data).",
                    code="unsupported_media_type",
                )
        if self.declared is not None and self.declared > self.limit:
            return self._too_large(f"{self.declared} bytes")
        return None

    def _same_origin(self, host: str | None) -> bool:
        assert self.origin is not None
        scheme = self.scope.get("scheme", "http")
        return host is not None and self.origin.lower() == f"{scheme}://{host}".lower()

    def _auth_error(self) -> APIError | None:
        assert self.config.api_key is not None
        auth = self.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        # Constant time: how much of a guess is right must not show in how long a "no" takes.
        if hmac.compare_digest(token.encode(), self.config.api_key.encode()):
            return None
        if token:
            shown = token[:3] + "*" * 4 + token[-4:] if len(token) > 8 else "*" * 4
            message = f"Incorrect API key provided: {shorten(shown)}."
        else:
            message = (
                "You didn't provide an API key. Provide it as a bearer token in the "
                "Authorization header."
            )
        return APIError(401, message, code="invalid_api_key")

    def _too_large(self, size: str) -> APIError:
        if self.limit > self.config.max_request_bytes:
            what = (
                f"Uploads are limited to {megabytes(self.config.max_upload_bytes)} "
                "(ftui serve --max-upload-mb)"
            )
        else:
            what = (
                f"Request bodies are limited to {megabytes(self.config.max_request_bytes)} "
                "(ftui serve --max-request-mb)"
            )
        return APIError(
            413,
            f"The request body is too large ({size}). {what}.",
            code="request_too_large",
        )

    # --- answers -------------------------------------------------------------------------
    def _extra_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-content-type-options", b"nosniff")]
        if self.cors_origin is not None:
            headers += [
                (b"access-control-allow-origin", self.cors_origin.encode("latin-1")),
                (b"vary", b"Origin"),
            ]
        return headers

    async def answer(self, error: APIError, *, linger: bool) -> None:
        """Answer for the route and close the connection; read away the rest of the body first
        when the client may still be sending it (unless it waits for `100 Continue`, which
        reading would send)."""
        self.answered = True
        if self.started:
            return  # the route began its answer; the client sees the connection end
        self.started = True
        body = dumps(error.body()).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *self._extra_headers(),
                ],
            }
        )
        waits_for_continue = self.headers.get("expect", "").lower() == "100-continue"
        if linger and not self.body_done and not waits_for_continue:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
            await self._linger()
            await self._send({"type": "http.response.body", "body": b""})
        else:
            await self._send({"type": "http.response.body", "body": body})

    async def _linger(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while not self.body_done and (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(self._receive(), min(left, LINGER_IDLE_SECONDS))
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.body_done = True

    async def preflight(self) -> None:
        requested = self.headers.get("access-control-request-headers", "")
        headers = [
            (b"access-control-allow-methods", CORS_METHODS.encode()),
            (b"access-control-allow-headers", requested.encode("latin-1")),
            (b"access-control-max-age", CORS_MAX_AGE.encode()),
            (b"content-length", b"0"),
            *self._extra_headers(),
        ]
        self.started = True
        await self._send({"type": "http.response.start", "status": 204, "headers": headers})
        await self._send({"type": "http.response.body", "body": b""})

    # --- what the route gets -------------------------------------------------------------
    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        if self.body_done or self.started:
            # The body is in (or the answer under way): the route only listens for the client
            # leaving, for as long as it streams; no time limit here.
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), self.config.request_timeout)
        except TimeoutError:
            seconds = f"{self.config.request_timeout:g}"
            error = APIError(
                408,
                f"The request body did not arrive: nothing was received for {seconds} seconds "
                f"({self.received} bytes of the body so far).",
                code="request_timeout",
            )
            await self.answer(error, linger=False)
            return {"type": "http.disconnect"}
        if message["type"] != "http.request":
            self.body_done = True
            return message
        self.received += len(message.get("body", b""))
        if not message.get("more_body", False):
            self.body_done = True
        if self.received > self.limit:
            await self.answer(self._too_large(f"over {self.limit} bytes"), linger=True)
            return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
            message = {**message, "headers": [*message.get("headers", []), *self._extra_headers()]}
        await self._send(message)
