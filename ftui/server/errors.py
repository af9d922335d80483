"""Errors in the OpenAI error shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations


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
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
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
    return APIError(404, f"No such {kind} object: {ident}", param=param)


def clip(text: str, limit: int = 200) -> str:
    """``text`` as an error message quotes it: whole when short, else its first ``limit``
    characters and its length, so that a huge input is never echoed back whole."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"…({len(text)} characters)"
