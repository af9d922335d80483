"""Checks of request parameters that answer with the OpenAI error shape and name the field."""

from __future__ import annotations

import json
import math
from typing import Any

from ftui.server.http.errors import APIError, bad_request, shorten

# No request of this API nests deeper than a few levels (method.supervised.hyperparameters,
# integrations[0].wandb.tags); a bound keeps every later walk, copy and encode of a body cheap.
MAX_JSON_DEPTH = 32


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON request body as a dict, with `null` values dropped: null means "use the default".

    Every route parses its body here, so what no route may see is refused once, for all:
    nesting deeper than MAX_JSON_DEPTH and non-finite numbers (`NaN`, `Infinity`, `1e400`),
    which Python's JSON reader accepts but no field of this API means, and which cannot be
    written back out as JSON.
    """
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of 5000 digits
        raise bad_request(
            f"We could not parse the JSON body of your request ({shorten(exc, 200)}). The body "
            "must be a JSON object."
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The JSON body of your request must be an object.")
    _check_values(body)
    return {k: v for k, v in body.items() if v is not None}


def _too_deep() -> APIError:
    return bad_request(
        f"The JSON body of your request is nested too deeply (more than {MAX_JSON_DEPTH} levels)."
    )


def field_path(parts: tuple[str | int, ...]) -> str:
    """`("method", "supervised", "x")` as `method.supervised.x`; list positions as `prompt[3]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{shorten(part, 64)}" if out else shorten(part, 64)
    return out


def _check_values(body: dict[str, Any]) -> None:
    """Refuse too-deep nesting and non-finite numbers, naming the field (iterative: no recursion).

    Only containers are kept on the stack with their path: a body of a million token ids is
    walked in tens of milliseconds.
    """
    stack: list[tuple[tuple[str | int, ...], dict | list]] = [((), body)]
    while stack:
        path, container = stack.pop()
        if len(path) >= MAX_JSON_DEPTH:
            raise _too_deep()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        nested = []
        for key, value in items:
            if isinstance(value, float) and not math.isfinite(value):
                where = field_path((*path, key))
                shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
                raise bad_request(
                    f"Invalid value for '{where}': {shown} is not a finite number; send a "
                    "number within the field's range.",
                    param=where,
                )
            if isinstance(value, dict | list):
                nested.append(((*path, key), value))
        stack.extend(reversed(nested))


def reject_unknown(body: dict[str, Any], allowed: set[str], where: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        name = f"{where}.{shorten(unknown[0])}" if where else shorten(unknown[0])
        raise bad_request(f"Unrecognized request argument supplied: {name}", param=name)


def type_name(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def _shown(value: Any) -> str:
    return shorten(json.dumps(value))


def integer(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_request(
                f"Invalid type for '{key}': expected an integer, but got {type_name(value)} "
                f"({_shown(value)}).",
                param=key,
            )
    if not lo <= value <= hi:
        raise bad_request(
            f"'{key}' must be between {lo} and {hi}; got {shorten(value)}.", param=key
        )
    return value


def number(
    body: dict[str, Any], key: str, lo: float, hi: float, *, lo_inclusive: bool = True
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(
            f"Invalid type for '{key}': expected a number, but got {type_name(value)} "
            f"({_shown(value)}).",
            param=key,
        )
    if isinstance(value, float) and not math.isfinite(value):
        # Checked by name, not left to the bounds below: every comparison with NaN is false.
        raise bad_request(f"'{key}' must be a finite number; got {value}.", param=key)
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
            f"Invalid type for '{key}': expected a string, but got {type_name(value)}.",
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
            f"Invalid type for '{key}': expected a boolean, but got {type_name(value)}.",
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


def query_flag(raw: str | None, key: str) -> bool:
    """A true/false query parameter; anything else is an error, not a silent false."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise bad_request(f"'{key}' must be true or false; got {shorten(repr(raw))}.", param=key)
    return value in ("true", "1")


def query_limit(raw: str | None, default: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(
            f"'limit' must be an integer; got {shorten(repr(raw))}.", param="limit"
        ) from None
    if not 1 <= value <= hi:
        raise bad_request(f"'limit' must be between 1 and {hi}; got {value}.", param="limit")
    return value
