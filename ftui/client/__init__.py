"""THE async API client: the one place in ftui that talks HTTP.

One :class:`Client` per profile, over ``httpx.AsyncClient``::

    async with await connect("local") as client:
        f = await client.files.create("train.jsonl", on_progress=print)
        job = await client.jobs.create(f.id, "ada", n_epochs=1)
        async for event in client.follow(job.id):
            print(event.message)
        rows = await client.jobs.results(job.id)

Both API dialects are served by one object model (:mod:`ftui.types`): ``legacy``
(``/v1/fine-tunes``) and ``current`` (``/v1/fine_tuning/jobs``). A profile's dialect is ``auto``
(probed once, remembered in the cache), ``current`` or ``legacy``.

The package's parts: ``errors`` (the exceptions), ``transport`` (requests with retries and
backoff, and the one SSE reader), ``follow`` (resumable event following), the resources
``files``, ``jobs`` (with :func:`plan_create`, the one plan of a create request),
``completions`` (completions and models) and ``chat`` (chat completions), and ``_client``
(:class:`Client`, :func:`connect`).
"""

from ftui.client._client import Client, connect, is_healthy
from ftui.client.chat import ChatParams
from ftui.client.completions import CompletionParams
from ftui.client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
    UnsupportedError,
)
from ftui.client.jobs import JobChoices, JobPlan, parse_results_csv, plan_create
from ftui.client.transport import Backoff, RetryNotice

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "ChatParams",
    "Client",
    "CompletionParams",
    "ConflictError",
    "JobChoices",
    "JobPlan",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryNotice",
    "ServerError",
    "StreamError",
    "UnsupportedError",
    "connect",
    "is_healthy",
    "parse_results_csv",
    "plan_create",
]
