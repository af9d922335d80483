"""The shape of one fine-tuning example, and line-by-line validation of a JSONL training file.

Shared by the server's upload validation and the prepare checks, so both sides agree on what a
valid example is. Standard library only: the server and the TUI both import it.

Beyond the shape, no value of a line may be what Python's json module accepts but training
cannot use: a lone surrogate (``"\ud800"``: not Unicode text, the tokenizer refuses it) or a
non-finite number (``NaN``, ``Infinity``, ``1e400``: not standard JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ftui.textsafe import first_surrogate

CHAT_ROLES = frozenset({"system", "user", "assistant"})
PROMPT_COMPLETION = "prompt_completion"
CHAT = "chat"


@dataclass(frozen=True)
class RecordError(Exception):
    """A problem with one line of a JSONL file (1-based line number)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class JsonlSummary:
    examples: int
    format: str


def record_format(obj: object) -> str | None:
    """Which example format `obj` claims to be in, judged by its keys alone."""
    if isinstance(obj, dict):
        if "messages" in obj:
            return CHAT
        if "prompt" in obj or "completion" in obj:
            return PROMPT_COMPLETION
    return None


def check_record(obj: object) -> str | None:
    """What is wrong with one parsed example, or None when it is a valid example."""
    return check_values(obj) or _check_shape(obj)


def check_values(obj: object) -> str | None:
    """The first value (keys included, at any depth) that is a lone surrogate or a non-finite
    number, named by its path, or None."""
    stack: list[tuple[object, str]] = [(obj, "")]
    while stack:  # no recursion: json.loads accepts nesting deeper than Python's stack
        value, path = stack.pop()
        where = f"field {path}" if path else "the line"
        if isinstance(value, str):
            at = first_surrogate(value)
            if at is not None:
                return (
                    f"{where} holds a lone surrogate ({value[at]!r} at character {at}), which "
                    "is not valid Unicode text"
                )
        elif isinstance(value, float) and not math.isfinite(value):
            name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return f"{where} is {name}, which is not a valid JSON number"
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if first_surrogate(key) is not None:
                    return (
                        f"{where} has a key with a lone surrogate ({json.dumps(key)}), which "
                        "is not valid Unicode text"
                    )
                stack.append((item, f"{path}[{json.dumps(key)}]" if path else json.dumps(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None


def _check_shape(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return f"is not a JSON object (found {_json_type(obj)})"
    fmt = record_format(obj)
    if fmt == CHAT:
        return _check_chat(obj["messages"])
    if fmt == PROMPT_COMPLETION:
        for field in ("prompt", "completion"):
            if field not in obj:
                return f'is missing the field "{field}"'
            if not isinstance(obj[field], str):
                return f'field "{field}" must be a string (found {_json_type(obj[field])})'
        return None
    return 'has neither "prompt" and "completion" nor "messages"'


def _check_chat(messages: object) -> str | None:
    if not isinstance(messages, list) or not messages:
        return 'field "messages" must be a non-empty list'
    has_assistant = False
    for i, message in enumerate(messages):
        where = f'"messages"[{i}]'
        if not isinstance(message, dict):
            return f"{where} must be an object (found {_json_type(message)})"
        role = message.get("role")
        if role not in CHAT_ROLES:
            return f"{where} has role {json.dumps(role)}; expected one of system, user, assistant"
        if not isinstance(message.get("content"), str):
            return f'{where} field "content" must be a string'
        has_assistant = has_assistant or role == "assistant"
    if not has_assistant:
        return 'field "messages" has no assistant message to learn from'
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _hint(raw: bytes) -> str:
    return raw[:20].decode("utf-8", "replace").strip()


def validate_jsonl(lines: Iterable[bytes]) -> JsonlSummary:
    """Check every line of a fine-tuning JSONL file; raise RecordError for the first bad one.

    Whitespace-only lines are ignored (editors leave them at the end). All examples must share
    one format, since a job trains either on prompt/completion pairs or on chat transcripts.
    """
    examples = 0
    fmt: str | None = None
    for _, obj in iter_examples(lines):
        examples += 1
        fmt = fmt or record_format(obj)
    if examples == 0:
        raise RecordError(1, "the file has no examples")
    assert fmt is not None
    return JsonlSummary(examples=examples, format=fmt)


def iter_examples(lines: Iterable[bytes]) -> Iterator[tuple[int, dict]]:
    """The examples of a fine-tuning JSONL file with their line numbers, each checked as
    validate_jsonl checks it (the upload check and the training process both read files this
    way, so they cannot disagree); RecordError for the first bad line. Yields nothing for a file
    without examples."""
    fmt: str | None = None
    # Lone surrogates come only from \u escapes, non-finite numbers only from the constants or
    # from numbers too large for a float: the value walk runs for the lines that have them.
    unusual: list[str] = []

    def constant(name: str) -> float:
        unusual.append(name)
        return float(name)

    def floating(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            unusual.append(text)
        return value

    decoder = json.JSONDecoder(parse_constant=constant, parse_float=floating)
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(
                number, f"is not valid UTF-8 text (byte {exc.start + 1}); is this a binary file?"
            ) from None
        if not text.strip():
            continue
        try:
            if text.startswith("\ufeff"):  # as json.loads says it
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
            obj = decoder.decode(text)
        except json.JSONDecodeError as exc:
            raise RecordError(
                number,
                f"is not valid JSON ({exc.msg} at column {exc.colno}; "
                f'line starts with: "{_hint(raw)}")',
            ) from None
        except RecursionError:
            raise RecordError(number, "is nested too deeply to be an example") from None
        problem = None
        if unusual or "\\u" in text:
            unusual.clear()
            problem = check_values(obj)
        problem = problem or _check_shape(obj)
        if problem:
            raise RecordError(number, problem)
        this = record_format(obj)
        if fmt is None:
            fmt = this
        elif this != fmt:
            raise RecordError(
                number, f"is in the {this} format but earlier lines are in the {fmt} format"
            )
        yield number, obj
