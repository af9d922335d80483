"""uvicorn's h11 connection handler, with answers for what never reaches the application.

uvicorn answers a request it cannot parse with a plain-text 400 and closes at once. When the
request was too large (a 200 KB header, a 1 MB URL), the client is still sending it then, and
closing a socket that has unread data makes the kernel reset the connection: the client gets
"connection reset" instead of the answer. Here the answer is an OpenAI-shaped error with the
right status (414, 431, 400), the connection is half-closed after it, and what the client still
sends is read and dropped for a few seconds before the socket closes.

It also bounds how long a connection may wait for a request's head: uvicorn's keep-alive timer
only starts after a first response and any byte resets it, so a client that connects and stays
silent, or sends a header a byte at a time, would hold its connection forever.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ftui.server.http.errors import APIError
from ftui.server.http.views import dumps

# The most a request line and its headers may take together: h11's default, stated here so the
# README and the 431 message can say it.
MAX_HEAD_BYTES = 16 * 1024
LINGER_SECONDS = 5.0
LINGER_IDLE_SECONDS = 1.0


class _Connection(h11.Connection):
    """h11's connection, keeping the protocol error uvicorn catches (it drops the reason).

    h11 bounds only a head that is still incomplete; one that arrives whole in a single read
    (up to the socket's read size, 256 KiB) would pass at any size. Here a whole head is held to
    the same limit, so the limit does not depend on how the bytes were split on the way."""

    last_error: h11.RemoteProtocolError | None = None
    # Set when a whole head was refused: True for its request line, False for its headers.
    oversized_line: bool | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                self._check_head_size(event)
            return event
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise

    def _check_head_size(self, request: h11.Request) -> None:
        line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
        size = line + sum(len(name) + len(value) + 4 for name, value in request.headers)
        if size > MAX_HEAD_BYTES:
            self.oversized_line = line > MAX_HEAD_BYTES
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)


class GuardedH11Protocol(H11Protocol):
    request_timeout: float = 30.0  # set by ftui serve (--request-timeout)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, MAX_HEAD_BYTES)
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None
        self._linger_deadline = 0.0

    # --- the wait for a request's head ----------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.request_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a head came, the rest did not
            seconds = f"{self.request_timeout:g}"
            self._answer_and_close(
                APIError(
                    408,
                    f"The request's headers did not arrive within {seconds} seconds.",
                    code="request_timeout",
                )
            )
        else:  # an idle connection: nothing to answer
            self._unset_keepalive_if_required()
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._linger_more()
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        super().connection_lost(exc)

    # --- requests that cannot be parsed ---------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(self._parse_error())

    def _parse_error(self) -> APIError:
        error = self.conn.last_error
        buffered = self.conn.trailing_data[0]
        if error is not None and error.error_status_hint == 431:
            line = self.conn.oversized_line
            if line is None:  # refused by h11 while incomplete: is the first line whole?
                line = b"\r\n" not in buffered[:MAX_HEAD_BYTES]
            if line:
                return APIError(
                    414,
                    f"The request line (method and URL) is longer than {MAX_HEAD_BYTES} bytes.",
                    code="uri_too_long",
                )
            return APIError(
                431,
                f"The request's headers are larger than {MAX_HEAD_BYTES} bytes in all.",
                code="request_header_fields_too_large",
            )
        reason = str(error) if error is not None else "malformed request"
        return APIError(400, f"Invalid HTTP request: {reason}.", code="invalid_http_request")

    def _answer_and_close(self, error: APIError) -> None:
        """Write the answer as raw bytes (h11 will not send a response to a request it never
        saw), half-close, and linger."""
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        body = dumps(error.body()).encode()
        phrase = HTTPStatus(error.status).phrase
        head = (
            f"HTTP/1.1 {error.status} {phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n"
            "x-content-type-options: nosniff\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is complete; the client may read it now
        self._linger_deadline = self.loop.time() + LINGER_SECONDS
        self._linger_more()

    def _linger_more(self) -> None:
        """Drop what the client still sends; close once it pauses or the time is up."""
        if self._lingering is not None:
            self._lingering.cancel()
        left = self._linger_deadline - self.loop.time()
        self._lingering = self.loop.call_later(
            max(0.0, min(LINGER_IDLE_SECONDS, left)), self.transport.close
        )
