"""`POST /v1/chat/completions`: the chat answer and its stream chunks, on the completions
machinery (model resolution and cache, worker threads, the decoding loop of `infer`, the event
stream that stops a generation when its client goes away).

The request is parsed by `chat_request`; the prompt is rendered by `encode.render_chat_prompt`
(the one place where messages become tokens); tool calls are read from the output by
`toolcalls`. The n choices of a request are the n samples of one prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ftui import __version__
from ftui.server.http import params
from ftui.server.http.errors import bad_request
from ftui.server.jobs.store import new_id, now
from ftui.server.serving import grammar, infer, toolcalls
from ftui.server.serving.chat_request import ChatRequest, parse_request
from ftui.server.serving.choicetext import Token
from ftui.server.serving.completions import CompletionService, Generation, sse
from ftui.server.serving.model_cache import LoadedModel, TooManyTokens
from ftui.server.training.encode import PromptTooLong, asks_for_tool_call_tags


def context_error(entry: LoadedModel, prompt: int, req: ChatRequest, at_least: bool) -> Exception:
    more = "at least " if at_least else ""
    if req.max_tokens is None:
        detail = (
            f"However, your messages resulted in {more}{prompt} tokens, which leaves no room "
            "for a completion. Please reduce the length of the messages."
        )
    else:
        detail = (
            f"However, you requested {more}{prompt + req.max_tokens} tokens ({more}{prompt} in "
            f"the messages, {req.max_tokens} in the completion). Please reduce the length of the "
            f"messages or '{req.max_tokens_param}'."
        )
    return bad_request(
        f"This model's maximum context length is {entry.context} tokens. {detail}",
        param="messages",
        code="context_length_exceeded",
    )


def prepare(entry: LoadedModel, req: ChatRequest) -> tuple[infer.Prompt, int, Any]:
    """The prompt's ids, the completion's token cap (by default, the rest of the context) and
    the grammar of `response_format`; refused when they do not fit the context or the
    key/value cache budget, or the schema cannot be compiled."""
    too_big = [t for t in req.logit_bias if t >= entry.vocab_size]
    if too_big:
        raise bad_request(
            f"'logit_bias' names token id {too_big[0]}, but this model's token ids are 0 to "
            f"{entry.vocab_size - 1}.",
            param="logit_bias",
        )
    from jinja2 import TemplateError  # chat templates are Jinja (transformers depends on it)

    room = entry.context - (req.max_tokens or 1)
    try:
        ids = entry.encode_chat(req.messages, req.tools or None, max(room, 0))
    except PromptTooLong as exc:
        raise context_error(entry, exc.tokens, req, at_least=False) from None
    except TooManyTokens as exc:
        raise context_error(entry, exc.at_least, req, at_least=True) from None
    except (TemplateError, ValueError, TypeError, LookupError) as exc:
        # A template that refuses these messages (its raise_exception), or cannot take them.
        raise bad_request(
            f"The model's chat template cannot render these messages: {exc}", param="messages"
        ) from None
    max_tokens = req.max_tokens if req.max_tokens is not None else entry.context - len(ids)
    constraint = None
    if req.json_schema is not None:
        try:
            constraint = grammar.compile_schema(entry, req.json_schema)
        except grammar.GrammarError as exc:
            raise bad_request(
                f"The JSON schema of 'response_format' cannot be enforced: {exc}",
                param="response_format.json_schema.schema",
            ) from None
    elif req.tool_choice not in ("auto", "none") and asks_for_tool_call_tags(entry.tokenizer):
        # required / a named function: the answer is made to be calls, in the model's format.
        chosen = req.tools
        if isinstance(req.tool_choice, dict):
            name = req.tool_choice["function"]["name"]
            chosen = [t for t in req.tools if t["function"]["name"] == name]
        try:
            constraint = grammar.compile_tool_calls(entry, chosen, req.parallel_tool_calls)
        except grammar.GrammarError as exc:
            raise bad_request(
                f"The parameters of the tools cannot be enforced as a JSON schema: {exc}",
                param="tools",
            ) from None
    prompt = infer.Prompt(ids)
    try:
        infer.check_budget(entry, [prompt], max_tokens, req.n)
    except infer.RequestError as exc:
        raise bad_request(exc.message, param=exc.param, code=exc.code) from None
    return prompt, max_tokens, constraint


# ---------------------------------------------------------------- logprobs


def token_bytes(entry: LoadedModel, token_id: int) -> list[int] | None:
    """A token's own UTF-8 bytes (a token may hold part of a character); None for special
    tokens, which have no byte form."""
    raw = entry.token_bytes(token_id)
    return None if raw is None else list(raw)


def logprob_entry(entry: LoadedModel, token: Token, k: int) -> dict[str, Any]:
    alternatives = []
    for text, lp in list((token.top or {}).items())[:k]:
        # infer reports alternatives by text; their bytes are those of the text.
        alternatives.append({"token": text, "logprob": lp, "bytes": list(text.encode())})
    return {
        "token": token.text,
        "logprob": token.logprob,
        "bytes": token_bytes(entry, token.id),
        "top_logprobs": alternatives,
    }


# ---------------------------------------------------------------- answers


@dataclass
class ChoiceState:
    """One choice while it streams: its tool-call reader and logprobs not yet sent."""

    tools: toolcalls.ToolText | None
    pending: list[dict[str, Any]] = field(default_factory=list)


class ChatService:
    """The chat route, over the completion service's models and threads."""

    def __init__(self, completions: CompletionService) -> None:
        self.completions = completions

    async def create(self, request: Request) -> Response:
        req = parse_request(params.parse_json_object(await request.body()))
        entry = await self.completions.model(req.model)
        prompt, max_tokens, constraint = await asyncio.to_thread(prepare, entry, req)
        sampling = req.completion(max_tokens)
        sampling.constraint = constraint
        generation = Generation(new_id("chatcmpl-"), entry, [prompt], sampling)
        head = {
            "id": generation.id,
            "created": now(),
            "model": req.model,
            "system_fingerprint": _fingerprint(entry),
            "service_tier": "default",
        }
        if req.stream:
            return self._stream(generation, req, head)
        return await self._answer(request, generation, req, head)

    async def _answer(
        self, request: Request, generation: Generation, req: ChatRequest, head: dict[str, Any]
    ) -> Response:
        candidates = await self.completions.gather(request, generation)
        if candidates is None:
            return Response(status_code=204)
        choices = []
        for index, cand in enumerate(candidates[0]):
            text = "".join(cand.text)
            finish = cand.finish.finish_reason if cand.finish else "length"
            content, calls = toolcalls.parse(text) if req.parse_tools else (text, [])
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if calls:
                message["tool_calls"] = calls if req.parallel_tool_calls else calls[:1]
                finish = "tool_calls"
            logprobs = None
            if req.logprobs:
                entry, k = generation.entry, req.top_logprobs
                entries = [logprob_entry(entry, t, k) for t in cand.tokens]
                logprobs = {"content": entries, "refusal": None}
            choices.append(
                {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish}
            )
        body = {**head, "object": "chat.completion", "choices": choices}
        body["usage"] = generation.usage()
        if req.metadata is not None:
            body["metadata"] = req.metadata
        return JSONResponse(body)

    def _stream(self, generation: Generation, req: ChatRequest, head: dict[str, Any]) -> Response:
        entry = generation.entry
        states = [
            ChoiceState(toolcalls.ToolText() if req.parse_tools else None) for _ in range(req.n)
        ]

        def chunk(
            index: int, delta: dict[str, Any], finish: str | None = None, lps: list | None = None
        ) -> str:
            logprobs = {"content": lps or [], "refusal": None} if req.logprobs else None
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            body = {**head, "object": "chat.completion.chunk", "choices": [choice]}
            if req.include_usage:
                body["usage"] = None
            return sse(body)

        def start() -> list[str]:
            # Each choice's role first, in index order (the SDK builds its snapshot from them);
            # with tools the content is left out: it is null when the answer is only calls.
            delta: dict[str, Any] = {"role": "assistant", "refusal": None}
            if not req.parse_tools:
                delta["content"] = ""
            return [chunk(c, delta) for c in range(req.n)]

        def render(_prompt: int, event: infer.GenerationEvent) -> list[str]:
            c, state = event.choice, states[event.choice]
            if req.logprobs:
                state.pending += [logprob_entry(entry, t, req.top_logprobs) for t in event.tokens]
            out: list[tuple[dict[str, Any], str | None]] = []
            if event.kind == "text":
                text = state.tools.feed(event.text) if state.tools else event.text
                if text or (state.pending and not state.tools):
                    out.append(({"content": text}, None))
            elif event.kind == "finish":
                finish = event.finish_reason or "length"
                if state.tools:
                    rest = state.tools.finish()
                    if rest:
                        out.append(({"content": rest}, None))
                    calls = state.tools.calls if req.parallel_tool_calls else state.tools.calls[:1]
                    for k, call in enumerate(calls):
                        out.append(({"tool_calls": [{"index": k, **call}]}, None))
                    if calls:
                        finish = "tool_calls"
                out.append(({}, finish))
            pieces = []
            for delta, finish in out:
                pieces.append(chunk(c, delta, finish, state.pending))
                state.pending = []
            return pieces

        def end() -> list[str]:
            if not req.include_usage:
                return []
            return [sse({**head, "object": "chat.completion.chunk", "choices": [],
                         "usage": generation.usage()})]  # fmt: skip

        return self.completions.event_stream(generation, render, end, start)


def _fingerprint(entry: LoadedModel) -> str:
    """Stable for one model on one server build and device, as `seed` users compare it."""
    key = f"{__version__}|{entry.path}|{entry.device}".encode()
    return "fp_" + hashlib.sha256(key).hexdigest()[:10]
