"""The shape of one fine-tuning example, and line-by-line validation of a JSONL training file.

Shared by the server's upload validation and the prepare checks, so both sides agree on what a
valid example is. Standard library only: the server and the TUI both import it.

A chat example (``messages``) is what the hosted service accepted: roles system, developer
(its newer name), user, assistant, tool and the older function; ``content`` a string or a list
of text parts; an optional ``name``; assistant ``tool_calls`` (or the older ``function_call``)
whose ``arguments`` are a string holding a JSON object; tool messages answering an open
``tool_call_id`` of the assistant message before them; an optional per-assistant ``weight`` of
0 or 1 (absent: 1, trained); line-level ``tools`` (or the older ``functions``) naming every
function the example calls, and ``parallel_tool_calls`` (false: one call per message). At least
one assistant message must be trained. Errors name the field path
(``messages[2].tool_calls[0].function.arguments``); keys not named here are ignored.

Beyond the shape, no value of a line may be what Python's json module accepts but training
cannot use: a lone surrogate (``"\ud800"``: not Unicode text, the tokenizer refuses it) or a
non-finite number (``NaN``, ``Infinity``, ``1e400``: not standard JSON).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ftui.textsafe import first_surrogate

# The roles of a chat message, in the order errors list them; "developer" is the newer name of
# "system", "function" the older form of "tool" (answering a "function_call").
ROLE_ORDER = ("system", "developer", "user", "assistant", "tool", "function")
CHAT_ROLES = frozenset(ROLE_ORDER)
# The keys a chat line may have beside its messages.
CHAT_LINE_KEYS = ("tools", "functions", "parallel_tool_calls")
MAX_FUNCTIONS = 128  # the hosted service's bound on `functions`, kept for `tools` too
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
                stack.append((item, _field_path(path, key)))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None


def _field_path(path: str, key: str) -> str:
    """``messages[1].content``: a key that is a plain name is joined with a dot, any other key
    is quoted in brackets (``["a b"]``)."""
    if FIELD_NAME.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _check_shape(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return f"is not a JSON object (found {_json_type(obj)})"
    fmt = record_format(obj)
    if fmt == CHAT:
        return check_chat(obj)
    if fmt == PROMPT_COMPLETION:
        for field in ("prompt", "completion"):
            if field not in obj:
                return f"is missing the field {field}"
            if not isinstance(obj[field], str):
                return f"field {field} must be a string (found {_json_type(obj[field])})"
        return None
    return "has neither prompt and completion nor messages"


def check_chat(obj: dict, training: bool = True) -> str | None:
    """The chat rules (see the module's docstring) for ``obj`` with ``messages`` and optionally
    ``tools``/``functions`` and ``parallel_tool_calls``; the first problem, naming its field path
    (``messages[2].tool_calls[0].function.arguments``), or None. ``training=False`` checks a
    conversation to be continued (a chat request): it needs no assistant message."""
    tools, problem = _check_tool_definitions(obj)
    if problem:
        return problem
    parallel = obj.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        return f"field parallel_tool_calls must be true or false (found {_json_type(parallel)})"
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        return "field messages must be a non-empty list"
    has_assistant = trained = False
    pending: list[str] = []  # tool_call ids of the last assistant message not yet answered
    after_calls = False  # the previous message is an assistant call or a tool answer
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            return f"field {where} must be an object (found {_json_type(message)})"
        role = message.get("role")
        if role not in CHAT_ROLES:
            found = "is missing" if "role" not in message else f"is {json.dumps(role)}"
            return f"field {where}.role {found}; expected one of {', '.join(ROLE_ORDER)}"
        if role != "tool" and pending:
            return (
                f"field {where}: the tool calls of the assistant message before it are not all "
                f"answered by tool messages (no answer for tool_call_id {pending[0]!r})"
            )
        problem = _check_name(message, where, required=role == "function")
        problem = problem or _check_content(message, where, role)
        if problem:
            return problem
        if "weight" in message:
            if role != "assistant":
                return f"field {where}.weight is allowed on assistant messages only"
            weight = message["weight"]
            if isinstance(weight, bool) or weight not in (0, 1):
                return f"field {where}.weight must be 0 or 1 (found {json.dumps(weight)})"
        if role == "assistant":
            has_assistant = True
            trained = trained or message.get("weight", 1) == 1
            calls, problem = _check_calls(message, where, tools, parallel)
            if problem:
                return problem
            pending = calls
            after_calls = bool(calls)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                return f"field {where}.tool_call_id must be a non-empty string"
            if not after_calls:
                return (
                    f"field {where}.role: a tool message must answer a preceding assistant "
                    "message with tool_calls"
                )
            if call_id not in pending:
                return (
                    f"field {where}.tool_call_id {call_id!r} answers no open tool call of the "
                    "assistant message before it"
                )
            pending.remove(call_id)
        else:
            after_calls = False
    if not training:  # the model answers after the last message: every call needs its result
        if pending:
            return (
                f"field messages[{len(messages) - 1}]: the tool calls of the last assistant "
                f"message are not all answered (no answer for tool_call_id {pending[0]!r})"
            )
        return None
    if not has_assistant:
        return "field messages has no assistant message to learn from"
    if not trained:
        return "field messages has no assistant message with weight 1 to learn from"
    return None


def _check_tool_definitions(obj: dict) -> tuple[set[str] | None, str | None]:
    """The function names that ``tools`` (or the older ``functions``) define, None when the line
    defines none; or the first problem."""
    if "tools" in obj and "functions" in obj:
        return None, "has both tools and functions; use tools (functions is its older form)"
    key = "tools" if "tools" in obj else "functions" if "functions" in obj else None
    if key is None:
        return None, None
    items = obj[key]
    if not isinstance(items, list) or not items:
        return None, f"field {key} must be a non-empty list"
    if len(items) > MAX_FUNCTIONS:
        return None, f"field {key} has {len(items)} entries; at most {MAX_FUNCTIONS} are allowed"
    names: set[str] = set()
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            return None, f"field {where} must be an object (found {_json_type(item)})"
        if key == "tools":
            if item.get("type") != "function":
                return None, f'field {where}.type must be "function"'
            item, where = item.get("function"), f"{where}.function"
            if not isinstance(item, dict):
                return None, f"field {where} must be an object"
        name = item.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
            return None, (
                f"field {where}.name must be a function name (letters, digits, _ and -, "
                f"at most 64; found {json.dumps(name)})"
            )
        if name in names:
            return None, f"field {where}.name {name!r} is defined twice"
        names.add(name)
        if "description" in item and not isinstance(item["description"], str):
            return None, f"field {where}.description must be a string"
        if "parameters" in item and not isinstance(item["parameters"], dict):
            return None, f"field {where}.parameters must be a JSON Schema object"
    return names, None


def _check_name(message: dict, where: str, required: bool) -> str | None:
    if "name" not in message and not required:
        return None
    name = message.get("name")
    if not isinstance(name, str) or not name:
        return f"field {where}.name must be a non-empty string"
    return None


def _check_content(message: dict, where: str, role: str) -> str | None:
    calls = "tool_calls" in message or "function_call" in message
    content = message.get("content")
    if content is None and (role == "function" or (role == "assistant" and calls)):
        return None  # a call needs no text beside it; a function result may be empty
    if "content" not in message:
        return f"field {where}.content is missing"
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or role == "function":
        kinds = "a string" if role == "function" else "a string or a list of text parts"
        return f"field {where}.content must be {kinds} (found {_json_type(content)})"
    if not content:
        return f"field {where}.content is an empty list"
    for k, part in enumerate(content):
        at = f"{where}.content[{k}]"
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else None
            what = f'a part of type "{kind}"' if isinstance(kind, str) else _json_type(part)
            return (
                f'field {at} is {what}; only text parts ({{"type": "text", "text": ...}}) '
                "can be trained here"
            )
        if not isinstance(part.get("text"), str):
            return f"field {at}.text must be a string"
    return None


def _check_calls(
    message: dict, where: str, tools: set[str] | None, parallel: bool
) -> tuple[list[str], str | None]:
    """The tool_call ids of an assistant message (they must be answered by tool messages), or
    the first problem of its ``tool_calls`` / ``function_call``."""
    if "tool_calls" in message and "function_call" in message:
        return [], f"field {where} has both tool_calls and function_call; use tool_calls"
    if "function_call" in message:
        call = message["function_call"]
        if not isinstance(call, dict):
            return [], f"field {where}.function_call must be an object"
        return [], _check_function(call, f"{where}.function_call", tools)
    if "tool_calls" not in message:
        return [], None
    calls = message["tool_calls"]
    if not isinstance(calls, list) or not calls:
        return [], f"field {where}.tool_calls must be a non-empty list"
    if len(calls) > 1 and not parallel:
        return [], (
            f"field {where}.tool_calls has {len(calls)} calls but the line sets "
            "parallel_tool_calls to false (one call per assistant message)"
        )
    ids: list[str] = []
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            return [], f"field {at} must be an object (found {_json_type(call)})"
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            return [], f"field {at}.id must be a non-empty string"
        if call_id in ids:
            return [], f"field {at}.id {call_id!r} is used twice in this message"
        ids.append(call_id)
        if call.get("type") != "function":
            return [], f'field {at}.type must be "function"'
        function = call.get("function")
        if not isinstance(function, dict):
            return [], f"field {at}.function must be an object"
        problem = _check_function(function, f"{at}.function", tools)
        if problem:
            return [], problem
    return ids, None


def _check_function(call: dict, where: str, tools: set[str] | None) -> str | None:
    name = call.get("name")
    if not isinstance(name, str) or not name:
        return f"field {where}.name must be a non-empty string"
    if tools is not None and name not in tools:
        return f"field {where}.name {name!r} is not one of the functions the line defines"
    arguments = call.get("arguments")
    if not isinstance(arguments, str):
        return f"field {where}.arguments must be a string of JSON (found {_json_type(arguments)})"
    try:
        parsed = json.loads(arguments)
    except ValueError as exc:
        return f"field {where}.arguments is not valid JSON ({exc})"
    if not isinstance(parsed, dict):
        return f"field {where}.arguments must be a JSON object (found {_json_type(parsed)})"
    return None


def content_text(content: object) -> str:
    """A message's ``content`` as one string: text parts joined, no content as ""."""
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content if isinstance(content, str) else ""


def uses_tools(example: dict) -> bool:
    """Whether a chat example defines, calls or answers functions."""
    return any(k in example for k in ("tools", "functions")) or any(
        m.get("role") in ("tool", "function") or "tool_calls" in m or "function_call" in m
        for m in example["messages"]
    )


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
