"""Retries, backoff, Retry-After, typed errors and key hygiene of the client's HTTP core.

These use ``httpx.MockTransport`` because our own server never answers 429/5xx (or times out)
on demand; everything else about the client is tested against the real ``ftui serve``
(test_client_server.py, test_client_follow.py). The fault-injecting proxy in
test_client_follow.py covers the same retries over real sockets.
"""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from ftui.client import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    Backoff,
    BadRequestError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

KEY = "sk-live-TOPSECRET-abcdefghijklmnop"
FAST = Backoff(initial=0.01, maximum=0.05, factor=2.0, jitter=0.5)


def error_body(message: str, **kw) -> dict:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
            **kw,
        }
    }


def scripted(*answers):
    """A transport that answers each request with the next item (a Response or an exception)."""
    calls: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise type(item)(str(item), request=request)
        return item

    return httpx.MockTransport(handler), calls


def make_client(transport, **kw) -> tuple[Client, list]:
    notices: list = []
    kw.setdefault("backoff", FAST)
    client = Client(
        "http://api.test/v1",
        api_key=KEY,
        dialect="current",
        transport=transport,
        on_retry=notices.append,
        **kw,
    )
    return client, notices


MODELS = httpx.Response(200, json={"object": "list", "data": [{"id": "ada", "object": "model"}]})


async def test_429_honours_retry_after_then_succeeds():
    transport, calls = scripted(
        httpx.Response(
            429,
            headers={"Retry-After": "0.2"},
            json=error_body("Rate limit reached", code="rate_limit"),
        ),
        MODELS,
    )
    client, notices = make_client(transport)
    started = time.monotonic()
    async with client:
        models = await client.models.list()
    assert [m.id for m in models] == ["ada"]
    assert len(calls) == 2 and time.monotonic() - started >= 0.2
    assert notices[0].delay == 0.2 and isinstance(notices[0].error, RateLimitError)
    assert notices[0].error.message == "Rate limit reached"


async def test_retry_after_ms_and_http_date_forms():
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    transport, calls = scripted(
        httpx.Response(503, headers={"retry-after-ms": "30"}),
        httpx.Response(429, headers={"Retry-After": when}),
        MODELS,
    )
    client, notices = make_client(transport)
    async with client:
        await client.models.list()
    assert notices[0].delay == pytest.approx(0.03)
    assert 0 <= notices[1].delay <= 1.0


async def test_5xx_408_409_back_off_exponentially_with_jitter():
    transport, calls = scripted(
        httpx.Response(500, json=error_body("boom", type="server_error")),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(408),
        httpx.Response(409),
        MODELS,
    )
    client, notices = make_client(transport, backoff=Backoff(initial=0.01, maximum=1, jitter=0.5))
    async with client:
        await client.models.list()
    assert len(calls) == 5
    for n, notice in enumerate(notices):
        base = 0.01 * 2**n
        assert base * 0.5 <= notice.delay <= base, (n, notice.delay)
    assert isinstance(notices[0].error, ServerError) and notices[0].error.message == "boom"
    assert "bad gateway" in notices[1].error.message  # a non-JSON body is still reported


@pytest.mark.parametrize(
    "status, exc",
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, BadRequestError),
    ],
)
async def test_client_errors_are_typed_and_never_retried(status, exc):
    transport, calls = scripted(
        httpx.Response(status, json=error_body("No such thing: x", param="id", code="c"))
    )
    client, notices = make_client(transport)
    async with client:
        with pytest.raises(exc) as info:
            await client.jobs.retrieve("ftjob-x")
    assert len(calls) == 1 and notices == []
    err = info.value
    assert (err.message, err.status_code, err.param, err.code) == (
        "No such thing: x",
        status,
        "id",
        "c",
    )
    assert str(err) == f"No such thing: x (HTTP status code: {status})"


async def test_gives_up_after_max_retries_with_the_servers_message():
    transport, calls = scripted(httpx.Response(429, json=error_body("slow down")))
    client, notices = make_client(transport, max_retries=3)
    async with client:
        with pytest.raises(RateLimitError, match="slow down"):
            await client.models.list()
    assert len(calls) == 4 and [n.attempt for n in notices] == [1, 2, 3]


async def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    transport, calls = scripted(
        httpx.Response(429, headers={"Retry-After": "3600"}, json=error_body("quota"))
    )
    client, _ = make_client(transport, max_retry_after=60)
    async with client:
        with pytest.raises(RateLimitError) as info:
            await client.models.list()
    assert len(calls) == 1 and info.value.retry_after == 3600


async def test_timeouts_retry_reads_but_never_repeat_a_create():
    transport, calls = scripted(httpx.ReadTimeout("slow"), MODELS)
    client, notices = make_client(transport)
    async with client:
        await client.models.list()
    assert len(calls) == 2

    # A create that may have reached the server is not sent again: it could make two jobs.
    transport, calls = scripted(httpx.ReadTimeout("slow"), httpx.Response(200, json={}))
    client, _ = make_client(transport)
    async with client:
        with pytest.raises(APIConnectionError, match="timed out"):
            await client.jobs.create("file-1", "ada")
    assert len(calls) == 1

    # ... but one that never connected is.
    job = {"id": "ftjob-1", "object": "fine_tuning.job", "status": "validating_files"}
    transport, calls = scripted(httpx.ConnectError("refused"), httpx.Response(200, json=job))
    client, _ = make_client(transport)
    async with client:
        assert (await client.jobs.create("file-1", "ada")).id == "ftjob-1"
    assert len(calls) == 2
    assert calls[-1].url.path == "/v1/fine_tuning/jobs"


async def test_x_should_retry_header_is_obeyed():
    transport, calls = scripted(httpx.Response(503, headers={"x-should-retry": "false"}))
    client, _ = make_client(transport)
    async with client:
        with pytest.raises(ServerError):
            await client.models.list()
    assert len(calls) == 1


async def test_the_key_is_sent_but_never_shown():
    echo = error_body(f"Incorrect API key provided: {KEY}. You can find your API key at ...")
    transport, calls = scripted(httpx.Response(401, json=echo))
    client, _ = make_client(transport, organization="org-1")
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.models.list()
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    assert calls[0].headers["openai-organization"] == "org-1"
    err = info.value
    for text in (str(err), repr(err), err.message, repr(client), str(vars(client))):
        assert KEY not in text
    assert "Incorrect API key provided" in err.message


async def test_unknown_status_is_still_an_api_status_error():
    transport, _ = scripted(httpx.Response(418, text="teapot"))
    client, _ = make_client(transport)
    async with client:
        with pytest.raises(APIStatusError, match="418"):
            await client.models.list()
