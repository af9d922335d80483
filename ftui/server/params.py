"""Checks of request parameters that answer with the OpenAI error shape and name the field."""

from __future__ import annotations

import json
from typing import Any

from ftui.server.errors import bad_request


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON request body as a dict, with `null` values dropped: null means "use the default"."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(
            f"We could not parse the JSON body of your request ({exc}). The body must be a "
            "JSON object."
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The JSON body of your request must be an object.")
    return {k: v for k, v in body.items() if v is not None}


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])


def _type_name(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def integer(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_request(
                f"Invalid type for '{key}': expected an integer, but got {_type_name(value)} "
                f"({json.dumps(value)}).",
                param=key,
            )
    if not lo <= value <= hi:
        raise bad_request(f"'{key}' must be between {lo} and {hi}; got {value}.", param=key)
    return value


def number(
    body: dict[str, Any], key: str, lo: float, hi: float, *, lo_inclusive: bool = True
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(
            f"Invalid type for '{key}': expected a number, but got {_type_name(value)} "
            f"({json.dumps(value)}).",
            param=key,
        )
    too_low = value < lo if lo_inclusive else value <= lo
    if too_low or value > hi:
        bound = "at least" if lo_inclusive else "greater than"
        raise bad_request(f"'{key}' must be {bound} {lo} and at most {hi}; got {value}.", param=key)
    return float(value)


def string(
    body: dict[str, Any], key: str, *, required: bool = False, max_length: int | None = None
) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_request(f"Missing required parameter: '{key}'.", param=key)
        return None
    if not isinstance(value, str):
        raise bad_request(
            f"Invalid type for '{key}': expected a string, but got {_type_name(value)}.",
            param=key,
        )
    if required and not value.strip():
        raise bad_request(f"'{key}' must not be empty.", param=key)
    if max_length is not None and not 1 <= len(value) <= max_length:
        raise bad_request(
            f"'{key}' must be 1 to {max_length} characters long; got {len(value)}.", param=key
        )
    return value


def boolean(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(
            f"Invalid type for '{key}': expected a boolean, but got {_type_name(value)}.",
            param=key,
        )
    return value


def auto_or(body: dict[str, Any], key: str, check) -> Any:
    """Current-API hyperparameters accept "auto" (stored as None) or a checked value."""
    if body.get(key) == "auto":
        return None
    return check(body, key)


def number_list(body: dict[str, Any], key: str) -> list[float] | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 for v in value)
    ):
        raise bad_request(f"'{key}' must be a non-empty list of positive numbers.", param=key)
    return [float(v) for v in value]


def query_limit(raw: str | None, default: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"'limit' must be an integer; got {raw!r}.", param="limit") from None
    if not 1 <= value <= hi:
        raise bad_request(f"'limit' must be between 1 and {hi}; got {value}.", param="limit")
    return value
