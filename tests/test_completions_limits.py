"""Requests that would make `/v1/completions` do unbounded work are refused early and quote no
huge input back, and one such request never holds up the others (real `ftui serve`, tiny model:
its context is 256 tokens)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.apihelpers import error_of
from tests.conftest import prepare_data_dir
from tests.serverproc import ServerProcess

SMALL = {"model": "tiny", "prompt": "Hi", "max_tokens": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir) -> Iterator[ServerProcess]:
    """A server that takes request bodies of up to 64 MiB, as someone sending long prompts would
    set it: the body limit is not what keeps these requests cheap; bounded tokenizing is."""
    data_dir = prepare_data_dir(tmp_path_factory.mktemp("long-prompts"), tiny_model_dir)
    proc = ServerProcess(data_dir, extra_args=("--threads", "1", "--max-request-mb", "64"))
    yield proc.start()
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        assert c.post("/completions", json=SMALL).status_code == 200  # the model is loaded
        yield c


def _memory_kb(server, field: str) -> int:
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc status")


def _post(client: httpx.Client, body: dict) -> httpx.Response:
    """JSON with \\u escapes (httpx cannot encode a lone surrogate as UTF-8; JSON can send it)."""
    return client.post(
        "/completions", content=json.dumps(body), headers={"content-type": "application/json"}
    )


def _timed(client: httpx.Client, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.post("/completions", **kwargs)
    return response, time.monotonic() - started


def test_a_multi_megabyte_prompt_is_refused_at_once_and_holds_up_no_one(server, client):
    prompt = "hello world " * 700_000  # 8.4 MB: ~1.4 million tokens, the context is 256
    body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 1}).encode()
    sent = threading.Event()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]
        sent.set()  # the whole body is on its way: the server is reading or tokenizing it

    peak_before = _memory_kb(server, "VmHWM")
    headers = {"content-type": "application/json"}
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(_timed, client, content=chunks(), headers=headers)
        assert sent.wait(60)
        small = pool.submit(_timed, client, json=SMALL)
        (big_response, big_took), (small_response, small_took) = big.result(), small.result()
    error = error_of(big_response, 400)
    assert error["code"] == "context_length_exceeded" and error["param"] == "max_tokens"
    assert "maximum context length is 256 tokens" in error["message"]
    assert "requested at least" in error["message"]
    assert len(big_response.content) < 1000  # the prompt is not echoed
    # Before: the whole prompt was tokenized first (~30 s for 20 MB, +3.4 GB) and the small
    # completion waited behind the tokenizer lock for all of it.
    assert big_took < 10, big_took
    assert small_response.status_code == 200 and small_took < 10, small_took
    assert _memory_kb(server, "VmHWM") - peak_before < 500_000


def test_many_long_prompts_stop_at_the_first_that_cannot_fit(client):
    prompts = [f"{i} " + "tell me more " * 800 for i in range(2048)]  # 20 MB in all
    response, took = _timed(client, json={"model": "tiny", "prompt": prompts, "max_tokens": 1})
    error = error_of(response, 400)
    assert error["code"] == "context_length_exceeded" and took < 10
    assert len(response.content) < 1000


def test_a_long_token_id_prompt_is_refused_by_its_length(client):
    response, took = _timed(
        client, json={"model": "tiny", "prompt": [5] * 1_000_000, "max_tokens": 1}
    )
    error = error_of(response, 400)
    assert error["code"] == "context_length_exceeded" and took < 10
    assert "1000001 tokens (1000000 in your prompt; 1 for the completion)" in error["message"]


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"prompt": ["Hi"] * 1025, "n": 2}, "n", "at most 2048 are generated"),
        ({"prompt": ["Hi"] * 200, "n": 2, "best_of": 11}, "best_of", "200 prompts × 11"),
        ({"logit_bias": {str(i): 1 for i in range(5000)}}, "logit_bias", "at most 4096 entries"),
        ({"stop": ["x" * 10_001]}, "stop", "at most 10000 characters"),
        ({"prompt": "a \ud800 b"}, "prompt", "lone surrogate ('\\ud800' at character 2)"),
        ({"prompt": ["fine", "\udfff"]}, "prompt", "lone surrogate"),
    ],
)
def test_requests_beyond_the_limits_are_400s_naming_the_field(client, change, param, words):
    error = error_of(_post(client, {**SMALL, **change}), 400)
    assert error["param"] == param and words in error["message"], error["message"]


def test_errors_quote_huge_inputs_clipped(client):
    key = "9" * 100_000 + "x"
    response = client.post("/completions", json={**SMALL, "logit_bias": {key: 1}})
    error = error_of(response, 400)
    assert "not a token id" in error["message"] and "(100001 characters)" in error["message"]
    assert len(response.content) < 1000
    for model in ("m" * 1_000_000, "n" * 300, "./" + "p" * 300, "bad\x00name", "\ud800"):
        response = _post(client, {**SMALL, "model": model})
        error = error_of(response, 404)
        assert error["code"] == "model_not_found" and len(response.content) < 2000
    assert (
        "(1000000 characters)"
        in error_of(client.post("/completions", json={**SMALL, "model": "m" * 1_000_000}), 404)[
            "message"
        ]
    )


def test_the_limits_leave_what_fits_alone(client):
    fits = {"prompt": ["Hi"] * 1024, "n": 2, "max_tokens": 1, "stop": ["x" * 10_000]}
    response = client.post("/completions", json={**SMALL, **fits})
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 2048
    bias = {str(i): -1 for i in range(3, 479)}
    response = client.post("/completions", json={**SMALL, "logit_bias": bias})
    assert response.status_code == 200, response.text
