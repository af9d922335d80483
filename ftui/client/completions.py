"""``client.completions`` (whole or streamed) and ``client.models``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ftui.client.transport import iter_sse, seg
from ftui.types import Completion, Deleted, Model

if TYPE_CHECKING:
    from ftui.client._client import Client

Prompt = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]


class CompletionParams(TypedDict, total=False):
    """The parameters of ``POST /completions`` besides model and prompt (the legacy API's full
    set). ``None`` is the same as leaving a parameter out: the server's default applies.
    ``extra`` is merged into the body as is."""

    suffix: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    n: int | None
    logprobs: int | None
    echo: bool | None
    stop: str | Sequence[str] | None
    presence_penalty: float | None
    frequency_penalty: float | None
    best_of: int | None  # not with stream(): the server refuses it there
    logit_bias: Mapping[str, float] | None
    user: str | None
    seed: int | None
    extra: Mapping[str, Any] | None


_KNOWN = frozenset(CompletionParams.__annotations__)
_LISTS = frozenset({"stop", "tools"})  # sequences sent as JSON arrays (a str stop stays a str)


def request_body(
    what: str, known: frozenset[str], head: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """``head`` plus the set ``params`` (``None`` left out, ``extra`` merged in as is); an
    unknown name is a TypeError naming it."""
    unknown = sorted(set(params) - known)
    if unknown:  # a typo must not reach the server as an unknown field, nor pass silently
        raise TypeError(f"unknown {what} parameters: {', '.join(unknown)}")
    body = dict(head)
    for key, value in params.items():
        if key != "extra" and value is not None:
            body[key] = list(value) if key in _LISTS and not isinstance(value, str) else value
    body.update(params.get("extra") or {})
    return body


def completion_body(model: str, prompt: Prompt, params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for ``model``, ``prompt`` and :class:`CompletionParams`."""
    return request_body("completion", _KNOWN, {"model": model, "prompt": prompt}, params)


async def stream_objects(
    client: Client, path: str, body: dict[str, Any], include_usage: bool | None, what: str
) -> AsyncIterator[dict[str, Any]]:
    """POST ``body`` with ``stream`` set and yield the server's SSE objects as they arrive.

    The stream is not restarted after it breaks mid-way (that would repeat text): the break
    is raised as :class:`APIConnectionError`.
    """
    body["stream"] = True
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    t = client._transport
    response = await t.send(
        "POST",
        path,
        json_body=body,
        headers={"Accept": "text/event-stream"},
        stream=True,
        idempotent=False,
    )
    try:
        async for obj in iter_sse(response, what, t.redact):
            yield obj
    finally:
        await response.aclose()


class Completions:
    def __init__(self, client: Client):
        self._c = client

    async def create(
        self, model: str, prompt: Prompt, **params: Unpack[CompletionParams]
    ) -> Completion:
        """``POST /completions``; unset parameters are left to the server's defaults."""
        body = completion_body(model, prompt, params)
        data = await self._c._transport.json(
            "POST", "/completions", json_body=body, idempotent=True
        )
        return Completion.from_api(data)

    async def stream(
        self,
        model: str,
        prompt: Prompt,
        *,
        include_usage: bool | None = None,
        **params: Unpack[CompletionParams],
    ) -> AsyncIterator[Completion]:
        """Stream a completion: yields chunks (same shape as a completion) as they arrive.

        The stream is not restarted after it breaks mid-way (that would repeat text): the
        break is raised as :class:`APIConnectionError`.
        """
        body = completion_body(model, prompt, params)
        objs = stream_objects(self._c, "/completions", body, include_usage, "completion stream")
        async with aclosing(objs):  # a consumer that stops early closes the response now
            async for obj in objs:
                yield Completion.from_api(obj)


class Models:
    def __init__(self, client: Client):
        self._c = client

    async def list(self) -> list[Model]:
        c = self._c
        data = await c._transport.json("GET", "/models")
        models = [Model.from_api(d) for d in data.get("data") or []]
        if c.cache is not None:
            await c._cache_do(c.cache.put_models, models, complete=True)
        return models

    async def retrieve(self, model: str) -> Model:
        return Model.from_api(await self._c._transport.json("GET", f"/models/{seg(model)}"))

    async def delete(self, model: str) -> Deleted:
        data = await self._c._transport.json("DELETE", f"/models/{seg(model)}")
        result = Deleted.from_api(data)
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.remove_model, model)
        return result
