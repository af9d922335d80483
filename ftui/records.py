"""The shape of one fine-tuning example, and line-by-line validation of a JSONL training file.

Shared by the server's upload validation and the prepare checks, so both sides agree on what a
valid example is. Standard library only: the server and the TUI both import it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

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
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(
                number,
                f"is not valid JSON ({exc.msg} at column {exc.colno}; "
                f'line starts with: "{_hint(raw)}")',
            ) from None
        problem = check_record(obj)
        if problem:
            raise RecordError(number, problem)
        this = record_format(obj)
        if fmt is None:
            fmt = this
        elif this != fmt:
            raise RecordError(
                number, f"is in the {this} format but earlier lines are in the {fmt} format"
            )
        examples += 1
    if examples == 0:
        raise RecordError(1, "the file has no examples")
    assert fmt is not None
    return JsonlSummary(examples=examples, format=fmt)
