"""Every bad value of a completions request: a 400 (404 for models) in the OpenAI error shape that
names the field, against the real `ftui serve`."""

from __future__ import annotations

import httpx
import pytest

from tests.apihelpers import error_of

OK = {"model": "tiny", "prompt": "Hi", "max_tokens": 2}


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        yield c


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"suffix": "the end"}, "suffix", "not supported"),
        ({"model": None}, "model", "Missing required parameter"),
        ({"model": 3}, "model", "expected a string"),
        ({"prompt": 5}, "prompt", "expected a string, an array of strings"),
        ({"prompt": []}, "prompt", "empty array"),
        ({"prompt": ["a", 1]}, "prompt", "not mixed"),
        ({"prompt": [[1, 2], []]}, "prompt", "not mixed"),
        ({"prompt": [-1, 3]}, "prompt", "negative"),
        ({"prompt": [1, 100000]}, "prompt", "token id 100000"),
        ({"max_tokens": -1}, "max_tokens", "between 0 and"),
        ({"max_tokens": "16"}, "max_tokens", "expected an integer"),
        ({"max_tokens": 1.5}, "max_tokens", "expected an integer"),
        ({"max_tokens": 255}, "max_tokens", "maximum context length is 256 tokens"),
        ({"temperature": 2.5}, "temperature", "at most 2"),
        ({"temperature": -0.1}, "temperature", "at least 0"),
        ({"temperature": "hot"}, "temperature", "expected a number"),
        ({"top_p": 1.01}, "top_p", "at most 1"),
        ({"n": 0}, "n", "between 1 and 128"),
        ({"n": 129}, "n", "between 1 and 128"),
        ({"logprobs": 6}, "logprobs", "between 0 and 5"),
        ({"logprobs": -1}, "logprobs", "between 0 and 5"),
        ({"logprobs": True}, "logprobs", "expected an integer"),
        ({"echo": "yes"}, "echo", "expected a boolean"),
        ({"stream": 1}, "stream", "expected a boolean"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": [""]}, "stop", "must not be empty"),
        ({"stop": 7}, "stop", "a string or an array"),
        ({"stop": ["a", 7]}, "stop", "a string or an array"),
        ({"presence_penalty": 2.5}, "presence_penalty", "at most 2"),
        ({"frequency_penalty": -2.5}, "frequency_penalty", "at least -2"),
        ({"best_of": 21}, "best_of", "between 1 and 20"),
        ({"best_of": 2, "n": 3}, "best_of", "greater than or equal to 'n'"),
        ({"best_of": 3, "n": 2, "stream": True}, "best_of", "cannot be used with 'stream'"),
        ({"logit_bias": [1]}, "logit_bias", "expected an object"),
        ({"logit_bias": {"abc": 1}}, "logit_bias", "not a token id"),
        ({"logit_bias": {"-3": 1}}, "logit_bias", "not a token id"),
        ({"logit_bias": {"5": 101}}, "logit_bias", "between -100 and 100"),
        ({"logit_bias": {"5": "x"}}, "logit_bias", "expected a number"),
        ({"logit_bias": {"99999": 5}}, "logit_bias", "token id 99999"),
        ({"seed": "x"}, "seed", "expected an integer"),
        ({"seed": 1.5}, "seed", "expected an integer"),
        ({"user": 5}, "user", "expected a string"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed"),
        ({"stream": True, "stream_options": {"x": 1}}, "stream_options", "include_usage"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "include_usage", "boolean"),
        ({"top_k": 5}, "top_k", "Unrecognized request argument"),
    ],
)
def test_bad_parameters_are_400s_naming_the_field(client, change, param, words):
    body = {**OK, **change}
    body = {k: v for k, v in body.items() if v is not None}
    error = error_of(client.post("/completions", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert words in error["message"], error["message"]


def test_context_error_says_the_numbers(client):
    error = error_of(client.post("/completions", json={**OK, "max_tokens": 300}), 400)
    assert error["code"] == "context_length_exceeded"
    # "Hi" is 2 tokens of the tiny tokenizer; its context is 256.
    assert "256 tokens" in error["message"] and "302 tokens" in error["message"]
    assert "2 in your prompt; 300 for the completion" in error["message"]
    fits = client.post("/completions", json={**OK, "max_tokens": 254, "logit_bias": {"2": -100}})
    assert fits.status_code == 200 and fits.json()["usage"]["total_tokens"] == 256


@pytest.mark.parametrize(
    "model",
    ["gpt-3.5-turbo-instruct", "ada:ft-personal-2023-01-01-00-00-00", "ft:tiny:personal::abc"],
)
def test_unknown_models_are_404_model_not_found(client, model):
    for response in (
        client.post("/completions", json={**OK, "model": model}),
        client.post(f"/engines/{model}/completions", json={"prompt": "Hi"}),
    ):
        error = error_of(response, 404)
        assert error["code"] == "model_not_found" and error["param"] == "model"
        assert f"`{model}`" in error["message"]


def test_malformed_bodies(client):
    for raw in (b"{not json", b"[1, 2]"):
        response = client.post(
            "/completions", content=raw, headers={"content-type": "application/json"}
        )
        assert "JSON" in error_of(response, 400)["message"]


def test_nulls_mean_defaults(client):
    body = {**OK, "max_tokens": None, "n": None, "stop": None, "logprobs": None, "suffix": None}
    result = client.post("/completions", json={**body, "temperature": 0})
    assert result.status_code == 200, result.text
    choice = result.json()["choices"][0]
    assert choice["logprobs"] is None and result.json()["usage"]["completion_tokens"] == 16
