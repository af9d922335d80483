"""Chat completions through the client against the real server's tiny model.

Greedy decoding (temperature 0) makes a streamed answer comparable with a whole one; the
model's end-of-text (token 2) is banned where a test needs the answer to run to its cap.
"""

from __future__ import annotations

import pytest

from ftui.client import BadRequestError, Client, NotFoundError

HI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]
NO_EOS = {"2": -100}


async def test_create_and_stream_give_the_same_answer(server):
    async with Client(server.base_url) as client:
        whole = await client.chat.create(
            "tiny", HI, max_completion_tokens=6, temperature=0, logit_bias=NO_EOS, seed=1
        )
        chunks = [
            ch
            async for ch in client.chat.stream(
                "tiny",
                HI,
                max_completion_tokens=6,
                temperature=0,
                logit_bias=NO_EOS,
                seed=1,
                include_usage=True,
            )
        ]
    assert whole.raw["object"] == "chat.completion" and whole.model == "tiny"
    choice = whole.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert whole.text and whole.usage.completion_tokens == 6
    assert chunks[0].choices[0].message.role == "assistant"
    assert "".join(ch.text for ch in chunks) == whole.text
    finishes = [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == () and chunks[-1].usage.completion_tokens == 6


async def test_parameters_reach_the_server(server):
    async with Client(server.base_url) as client:
        c = await client.chat.create(
            "tiny",
            HI,
            max_tokens=3,
            n=2,
            temperature=0,
            stop=("zzz",),
            logprobs=True,
            top_logprobs=2,
            logit_bias=NO_EOS,
            user="tests",
        )
        with pytest.raises(TypeError, match="unknown chat parameters: temprature"):
            await client.chat.create("tiny", HI, temprature=0)  # type: ignore[call-arg]
    assert [ch.index for ch in c.choices] == [0, 1]
    assert c.choices[0].message.content == c.choices[1].message.content  # greedy: the same
    assert c.choices[0].finish_reason == "length"
    content = c.choices[0].logprobs["content"]
    assert len(content) == 3 and all(len(e["top_logprobs"]) == 2 for e in content)


async def test_chat_errors(server):
    async with Client(server.base_url) as client:
        with pytest.raises(NotFoundError) as info:
            await client.chat.create("no-such-model", HI)
        assert info.value.code == "model_not_found"
        with pytest.raises(BadRequestError) as info:
            await client.chat.create("tiny", HI, temperature=5)
        assert info.value.param == "temperature"
        with pytest.raises(BadRequestError) as info:
            async for _ in client.chat.stream("tiny", HI, top_logprobs=99, logprobs=True):
                pass
        assert info.value.param == "top_logprobs"
