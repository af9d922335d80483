"""Completions through the client against the real server's tiny model."""

from __future__ import annotations

import pytest

from ftui.client import BadRequestError, Client, NotFoundError

PROMPT = "The movie was great ->"


async def test_create_with_parameters(server):
    async with Client(server.base_url) as client:
        c = await client.completions.create(
            "tiny",
            PROMPT,
            max_tokens=5,
            temperature=0,
            n=2,
            logprobs=2,
            echo=True,
            seed=3,
            presence_penalty=0.1,
            frequency_penalty=0.1,
            user="tests",
            logit_bias={"0": -100},
        )
    assert [ch.index for ch in c.choices] == [0, 1]
    assert c.choices[0].text == c.choices[1].text  # greedy: both the same
    assert c.choices[0].text.startswith(PROMPT) and c.choices[0].finish_reason == "length"
    lp = c.choices[0].logprobs
    assert lp.token_logprobs[0] is None  # the first echoed token has no logprob
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset)
    assert all(len(top) <= 3 for top in lp.top_logprobs[1:])
    assert c.usage.completion_tokens == 10 and c.usage.total_tokens > 10


async def test_stop_sequence_and_stream_match_the_plain_answer(server):
    async with Client(server.base_url) as client:
        plain = await client.completions.create("tiny", PROMPT, max_tokens=8, temperature=0)
        chunks = [
            ch
            async for ch in client.completions.stream(
                "tiny", PROMPT, max_tokens=8, temperature=0, include_usage=True
            )
        ]
        text = plain.text
        assert len(text) >= 3
        stop = text[2:3] if text[2:3].strip() else text[1:3]
        stopped = await client.completions.create(
            "tiny", PROMPT, max_tokens=8, temperature=0, stop=[stop]
        )
    assert "".join(ch.text for ch in chunks) == text
    assert (
        chunks[-1].choices == ()
        and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    )
    assert [ch.choices[0].finish_reason for ch in chunks[:-1]][-1] == plain.choices[0].finish_reason
    assert stopped.choices[0].finish_reason == "stop"
    assert stop not in stopped.text and text.startswith(stopped.text)


async def test_completion_errors(server):
    async with Client(server.base_url) as client:
        with pytest.raises(NotFoundError) as info:
            await client.completions.create("no-such-model", PROMPT)
        assert info.value.code == "model_not_found"
        with pytest.raises(BadRequestError) as info:
            await client.completions.create("tiny", PROMPT, temperature=5)
        assert info.value.param == "temperature"
        with pytest.raises(BadRequestError):
            async for _ in client.completions.stream("tiny", PROMPT, n=0):
                pass
