"""The request of `POST /v1/chat/completions`, parsed and checked: messages, sampling, tools.

Every field a local text model can honour is honoured (structured output through `grammar`);
every field it cannot (audio, images, predicted outputs, web search, reasoning effort, stored
completions) is refused with a 400 that names the field, never silently ignored.
Identifiers with no effect on the answer (`user`, `safety_identifier`, `prompt_cache_key`) are
accepted; `metadata` is checked and echoed. Sampling bounds are those of `completion_request`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ftui.server.http import params
from ftui.server.http.errors import bad_request, shorten
from ftui.server.serving.completion_request import (
    MAX_TOKENS_LIMIT,
    SEED_RANGE,
    CompletionRequest,
    parse_logit_bias,
    parse_stop,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MESSAGES = 10_000
MAX_TOOLS = 128
MAX_TOP_LOGPROBS = 20
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
IGNORED = {"user", "safety_identifier", "prompt_cache_key"}  # identifiers: no effect on output
FIELDS = {
    *("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n"),
    *("stop", "presence_penalty", "frequency_penalty", "logit_bias", "seed", "logprobs"),
    *("top_logprobs", "stream", "stream_options", "tools", "tool_choice"),
    *("parallel_tool_calls", "response_format", "metadata", "store", "service_tier"),
    *("modalities", *IGNORED),
}
# Fields of the API a local text model cannot honour, and why (each a 400 naming the field).
REFUSED = {
    "audio": "this server serves text models only",
    "prediction": "predicted outputs are not implemented",
    "web_search_options": "this server has no web search",
    "reasoning_effort": "its models have no reasoning-effort setting",
    "verbosity": "its models have no verbosity setting",
    "moderation": "this server has no moderation",
    "prompt_cache_retention": "this server keeps no prompt cache",
    "prompt_cache_options": "this server keeps no prompt cache",
    "functions": "use 'tools' (the deprecated 'functions' form is not implemented)",
    "function_call": "use 'tool_choice' (the deprecated 'function_call' form is not implemented)",
}
MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "refusal"}


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]  # as the chat template takes them: content is a string
    max_tokens: int | None = None  # None: up to the end of the model's context
    max_tokens_param: str = "max_completion_tokens"
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] = "none"
    parallel_tool_calls: bool = True
    metadata: dict[str, str] | None = None
    json_schema: dict[str, Any] | None = None  # response_format: what the answer must satisfy

    @property
    def parse_tools(self) -> bool:
        """Whether the output is read for tool calls."""
        return bool(self.tools) and self.tool_choice != "none"

    def completion(self, max_tokens: int) -> CompletionRequest:
        """The sampling part, as the shared generation machinery takes it."""
        return CompletionRequest(
            model=self.model,
            prompts=[],
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            n=self.n,
            best_of=self.n,
            stream=self.stream,
            include_usage=self.include_usage,
            # infer reports this many alternatives per token (and the chosen one).
            logprobs=self.top_logprobs if self.logprobs else None,
            stop=self.stop,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=self.logit_bias,
            seed=self.seed,
        )


def _text(value: Any, where: str, allow_refusal: bool = False) -> str:
    """A message content: a string, or an array of text parts (joined by newlines)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise bad_request(
            f"Invalid type for '{where}': expected a string or an array of text parts, but got "
            f"{params.type_name(value)}.",
            param=where,
        )
    texts = []
    for j, part in enumerate(value):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" or (allow_refusal and kind == "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise bad_request(f"'{here}.{kind}' must be a string.", param=f"{here}.{kind}")
            texts.append(text)
        elif kind in ("image_url", "input_audio", "file"):
            raise bad_request(
                f"'{here}' is a {kind} part; this server serves text models only, so content "
                "parts must be text.",
                param=f"{here}.type",
            )
        else:
            raise bad_request(
                f"Invalid value for '{here}': expected an object with type 'text'.",
                param=here,
            )
    return "\n".join(texts)


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise bad_request(f"'{where}' must be a non-empty array of tool calls.", param=where)
    calls = []
    for j, call in enumerate(value):
        here = f"{where}[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise bad_request(
                f"'{here}' must be {{id, type: 'function', function: {{name, arguments}}}}.",
                param=here,
            )
        name, arguments = fn.get("name"), fn.get("arguments", "")
        if not isinstance(call.get("id"), str) or not isinstance(name, str):
            raise bad_request(f"'{here}' needs a string 'id' and 'function.name'.", param=here)
        if not isinstance(arguments, str):
            raise bad_request(
                f"'{here}.function.arguments' must be a string (JSON text).",
                param=f"{here}.function.arguments",
            )
        try:  # chat templates expect the arguments as an object
            parsed: Any = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            parsed = arguments
        calls.append(
            {"id": call["id"], "type": "function", "function": {"name": name, "arguments": parsed}}
        )
    return calls


def parse_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("messages")
    if value is None:
        raise bad_request("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(value, list) or not value:
        raise bad_request("'messages' must be a non-empty array of messages.", param="messages")
    if len(value) > MAX_MESSAGES:
        raise bad_request(
            f"'messages' may hold at most {MAX_MESSAGES} messages; got {len(value)}.",
            param="messages",
        )
    messages: list[dict[str, Any]] = []
    open_calls: set[str] | None = None  # ids of the last assistant turn's calls, unanswered
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object.", param=where)
        message = {k: v for k, v in message.items() if v is not None}
        params.reject_unknown(message, MESSAGE_KEYS, where)
        role = message.get("role")
        if role not in ROLES:
            shown = shorten(json.dumps(role)) if role is not None else "nothing"
            raise bad_request(
                f"Invalid value for '{where}.role': {shown}. Supported values are: 'system', "
                "'developer', 'user', 'assistant' and 'tool'.",
                param=f"{where}.role",
                code="invalid_value",
            )
        out: dict[str, Any] = {"role": "system" if role == "developer" else role}
        calls = None
        if role == "assistant" and "tool_calls" in message:
            calls = _tool_calls(message["tool_calls"], f"{where}.tool_calls")
            out["tool_calls"] = calls
        elif "tool_calls" in message:
            raise bad_request(
                f"'{where}.tool_calls' is only allowed on assistant messages.",
                param=f"{where}.tool_calls",
            )
        if "content" in message:
            out["content"] = _text(message["content"], f"{where}.content", role == "assistant")
        elif role == "assistant" and calls:
            out["content"] = ""
        else:
            raise bad_request(
                f"Missing required parameter: '{where}.content'.", param=f"{where}.content"
            )
        if "name" in message:
            out["name"] = params.string(message, "name")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise bad_request(
                    f"Missing required parameter: '{where}.tool_call_id' (a string).",
                    param=f"{where}.tool_call_id",
                )
            if open_calls is None:
                raise bad_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceding message with 'tool_calls'.",
                    param=f"{where}.role",
                )
            open_calls.discard(call_id)
            out["tool_call_id"] = call_id
        elif open_calls:
            raise bad_request(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'; missing: {shorten(sorted(open_calls))}.",
                param=f"{where}.role",
            )
        else:
            open_calls = {c["id"] for c in calls} if calls else None
        messages.append(out)
    return messages


def parse_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("tools")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise bad_request(f"'tools' must be an array of at most {MAX_TOOLS} tools.", param="tools")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise bad_request(
                f"'{where}' must be {{type: 'function', function: {{name, ...}}}}; other tool "
                "types are not supported.",
                param=f"{where}.type",
            )
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise bad_request(
                f"Missing required parameter: '{where}.function'.",
                param=f"{where}.function",
                code="missing_required_parameter",
            )
        params.reject_unknown(fn, {"name", "description", "parameters", "strict"}, where)
        name = fn.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise bad_request(
                f"'{where}.function.name' must be 1 to 64 letters, digits, '_' or '-'.",
                param=f"{where}.function.name",
            )
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            raise bad_request(
                f"'{where}.function.parameters' must be a JSON Schema object.",
                param=f"{where}.function.parameters",
            )
        if "description" in fn and not isinstance(fn["description"], str):
            raise bad_request(
                f"'{where}.function.description' must be a string.",
                param=f"{where}.function.description",
            )
        tools.append({"type": "function", "function": fn})
    return tools


def parse_tool_choice(body: dict[str, Any], tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    value = body.get("tool_choice")
    if value is None:
        return "auto" if tools else "none"
    if value in ("none", "auto", "required"):
        choice: str | dict[str, Any] = value
    elif (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("function"), dict)
        and isinstance(value["function"].get("name"), str)
    ):
        name = value["function"]["name"]
        if name not in {t["function"]["name"] for t in tools}:
            raise bad_request(
                f"'tool_choice' names the function {shorten(name)!r}, which is not in 'tools'.",
                param="tool_choice",
            )
        choice = {"type": "function", "function": {"name": name}}
    else:
        raise bad_request(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            "{type: 'function', function: {name}}.",
            param="tool_choice",
            code="invalid_value",
        )
    if choice != "none" and not tools:
        raise bad_request(
            "'tool_choice' is only allowed when 'tools' are given.", param="tool_choice"
        )
    return choice


def parse_response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema the answer must satisfy (json_object: any object), or None for text."""
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        raise bad_request(
            "Invalid value for 'response_format.type': supported values are 'text', "
            "'json_object' and 'json_schema'.",
            param="response_format.type",
            code="invalid_value",
        )
    spec = value.get("json_schema")
    where = "response_format.json_schema"
    if not isinstance(spec, dict):
        raise bad_request(
            f"Missing required parameter: '{where}'.",
            param=where,
            code="missing_required_parameter",
        )
    params.reject_unknown(spec, {"name", "description", "schema", "strict"}, where)
    name = spec.get("name")
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise bad_request(
            f"'{where}.name' must be 1 to 64 letters, digits, '_' or '-'.", param=f"{where}.name"
        )
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise bad_request(
            f"'{where}.schema' must be a JSON Schema object.", param=f"{where}.schema"
        )
    if "strict" in spec:
        params.boolean(spec, "strict")  # the schema is enforced either way
    return schema


def _check_refused(body: dict[str, Any]) -> None:
    for key, why in REFUSED.items():
        if key in body:
            raise bad_request(f"'{key}' is not supported by this server: {why}.", param=key)
    if body.get("store"):
        raise bad_request(
            "'store' is not supported by this server: it keeps no completions. Leave out 'store'.",
            param="store",
        )
    if body.get("service_tier", "auto") not in ("auto", "default"):
        raise bad_request(
            "'service_tier' may only be 'auto' or 'default' on this server: it has one tier.",
            param="service_tier",
        )
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise bad_request(
            "'modalities' may only be [\"text\"]: this server serves text models only.",
            param="modalities",
        )


def _metadata(body: dict[str, Any]) -> dict[str, str] | None:
    value = body.get("metadata")
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in value.items()
        )
    ):
        raise bad_request(
            "'metadata' must be an object of at most 16 string pairs (keys up to 64 "
            "characters, values up to 512).",
            param="metadata",
        )
    return dict(value)


def parse_request(body: dict[str, Any]) -> ChatRequest:
    """Check every field of a chat completions request body (nulls already dropped)."""
    _check_refused(body)
    params.reject_unknown(body, FIELDS)
    model = params.string(body, "model", required=True)
    assert model is not None
    stream = bool(params.boolean(body, "stream"))
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
            raise bad_request(
                "'stream_options' must be an object with at most the keys 'include_usage' and "
                "'include_obfuscation'.",
                param="stream_options",
            )
        include_usage = bool(params.boolean(options, "include_usage"))
        params.boolean(options, "include_obfuscation")  # no padding is sent either way
    logprobs = bool(params.boolean(body, "logprobs"))
    top = params.integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not logprobs:
        raise bad_request(
            "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
            param="top_logprobs",
        )
    caps = {
        key: params.integer(body, key, 1, MAX_TOKENS_LIMIT)
        for key in ("max_completion_tokens", "max_tokens")
    }
    given = {k: v for k, v in caps.items() if v is not None}
    cap_param = min(given, key=lambda k: given[k]) if given else "max_completion_tokens"
    tools = parse_tools(body)
    tool_choice = parse_tool_choice(body, tools)
    parallel = params.boolean(body, "parallel_tool_calls")
    for key in IGNORED:
        params.string(body, key)
    temperature = params.number(body, "temperature", 0, 2)
    top_p = params.number(body, "top_p", 0, 1)
    return ChatRequest(
        model=model,
        messages=parse_messages(body),
        max_tokens=given.get(cap_param),
        max_tokens_param=cap_param,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        n=params.integer(body, "n", 1, 128) or 1,
        stream=stream,
        include_usage=include_usage,
        logprobs=logprobs,
        top_logprobs=top or 0,
        stop=parse_stop(body),
        presence_penalty=params.number(body, "presence_penalty", -2, 2) or 0.0,
        frequency_penalty=params.number(body, "frequency_penalty", -2, 2) or 0.0,
        logit_bias=parse_logit_bias(body),
        seed=params.integer(body, "seed", *SEED_RANGE),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=True if parallel is None else parallel,
        metadata=_metadata(body),
        json_schema=parse_response_format(body),
    )
