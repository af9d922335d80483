"""Errors in the OpenAI error shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

# How much of a user-supplied value an error message quotes: enough to recognise it, never a
# megabyte echoed back (a 100 MB id would otherwise come back whole in the 404).
QUOTE_CHARS = 100
# A last guard for messages built elsewhere from user input: nothing longer leaves the server.
MAX_MESSAGE_CHARS = 2000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} characters)"


# C0 and C1 control characters and DEL, shown as escapes: an id or name quoted in an error must
# not reach a terminal as an escape sequence when a client prints the message.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def shorten(value: object, limit: int = QUOTE_CHARS) -> str:
    """`value` as text for an error message: control characters and lone surrogates escaped,
    cut after `limit` characters (saying how long it was)."""
    text = value if isinstance(value, str) else str(value)
    quoted = text if len(text) <= limit else text[:limit]
    # Lone surrogates escaped too: the answer must encode as UTF-8.
    quoted = quoted.translate(_CONTROLS).encode("utf-8", "backslashreplace").decode("utf-8")
    return quoted if len(text) <= limit else f"{quoted}…({len(text)} characters)"


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        message = _cut(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = shorten(param) if param is not None else None
        self.code = code

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(kind: str, ident: str, param: str = "id") -> APIError:
    return APIError(404, f"No such {kind} object: {shorten(ident)}", param=param)
