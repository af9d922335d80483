"""``client.chat``: chat completions, whole or streamed, with one :class:`ChatParams`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from ftui.client.completions import request_body, stream_objects
from ftui.types import ChatCompletion

if TYPE_CHECKING:
    from ftui.client._client import Client

Message = Mapping[str, Any]  # {"role": ..., "content": ...} as the API takes it


class ChatParams(TypedDict, total=False):
    """The parameters of ``POST /chat/completions`` besides model and messages, shared by
    ``create`` and ``stream``. ``None`` is the same as leaving a parameter out: the server's
    default applies. ``extra`` is merged into the body as is."""

    max_completion_tokens: int | None
    max_tokens: int | None  # the older name of max_completion_tokens
    temperature: float | None
    top_p: float | None
    n: int | None
    stop: str | Sequence[str] | None
    presence_penalty: float | None
    frequency_penalty: float | None
    logit_bias: Mapping[str, float] | None
    seed: int | None
    logprobs: bool | None
    top_logprobs: int | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: Literal["none", "auto", "required"] | Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    response_format: Mapping[str, Any] | None
    metadata: Mapping[str, str] | None
    user: str | None
    extra: Mapping[str, Any] | None


_KNOWN = frozenset(ChatParams.__annotations__)


def chat_body(model: str, messages: Sequence[Message], params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for ``model``, ``messages`` and :class:`ChatParams`."""
    head = {"model": model, "messages": [dict(m) for m in messages]}
    return request_body("chat", _KNOWN, head, params)


class Chat:
    def __init__(self, client: Client):
        self._c = client

    async def create(
        self, model: str, messages: Sequence[Message], **params: Unpack[ChatParams]
    ) -> ChatCompletion:
        """``POST /chat/completions``; unset parameters are left to the server's defaults."""
        body = chat_body(model, messages, params)
        data = await self._c._transport.json(
            "POST", "/chat/completions", json_body=body, idempotent=True
        )
        return ChatCompletion.from_api(data)

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        include_usage: bool | None = None,
        **params: Unpack[ChatParams],
    ) -> AsyncIterator[ChatCompletion]:
        """Stream a chat completion: yields chunks whose choices hold the new part of the
        message (``chunk.text`` is the content added to the first choice; ``finish_reason``
        is set on a choice's last chunk). A stream that breaks mid-way is not restarted: the
        break is raised as :class:`APIConnectionError`."""
        body = chat_body(model, messages, params)
        objs = stream_objects(self._c, "/chat/completions", body, include_usage, "chat stream")
        async with aclosing(objs):  # a consumer that stops early closes the response now
            async for obj in objs:
                yield ChatCompletion.from_api(obj)
