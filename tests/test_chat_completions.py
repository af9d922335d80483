"""`/v1/chat/completions` driven by the official `openai` SDK against the real `ftui serve`.

The tiny model (its context raised to CONTEXT) has a ChatML template without tools, so these
requests also exercise the tools fallback of the prompt renderer. Greedy decoding (temperature
0) or a fixed seed makes outputs comparable between requests; the model's end-of-text (token 2)
is banned where a test needs the generation to run to its cap.
"""

from __future__ import annotations

import json
import shutil
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel

from tests.conftest import prepare_data_dir
from tests.serverproc import ServerProcess

openai = pytest.importorskip("openai", reason="the openai SDK (dev extra) is missing")

CONTEXT = 1024
EOS = "2"  # <|im_end|> in the tiny tokenizer
HI = [{"role": "user", "content": "Hello? What is 2+2?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory, tiny_model_dir):
    """The tiny model with a longer context: tools rendered into its prompt need room."""
    model = tmp_path_factory.mktemp("chat-model") / "tiny"
    shutil.copytree(tiny_model_dir, model)
    for name, key in (
        ("config.json", "max_position_embeddings"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        data = json.loads((model / name).read_text())
        data[key] = CONTEXT
        (model / name).write_text(json.dumps(data))
    data_dir = prepare_data_dir(tmp_path_factory.mktemp("chat-data"), model)
    proc = ServerProcess(data_dir, extra_args=("--threads", "1")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(chat_server):
    with openai.OpenAI(base_url=chat_server.base_url, api_key="k") as c:
        yield c


def greedy(**extra):
    return {"model": "tiny", "messages": HI, "temperature": 0, **extra}


def test_answer_has_the_reference_shape(client):
    r = client.chat.completions.create(**greedy(max_completion_tokens=6))
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"
    assert isinstance(r.created, int) and r.model == "tiny" and r.system_fingerprint
    (choice,) = r.choices
    assert choice.index == 0 and choice.logprobs is None
    assert choice.message.role == "assistant" and choice.message.refusal is None
    assert isinstance(choice.message.content, str) and choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 6
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_n_choices_are_indexed(client):
    r = client.chat.completions.create(
        model="tiny", messages=HI, n=3, max_completion_tokens=4, seed=3
    )
    assert [c.index for c in r.choices] == [0, 1, 2]


def test_stream_matches_the_answer_and_ends_with_done(chat_server, client):
    body = greedy(max_completion_tokens=8, logit_bias={EOS: -100})
    whole = client.chat.completions.create(**body)
    events = []
    with httpx.stream(
        "POST",
        f"{chat_server.base_url}/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        timeout=60,
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    first = chunks[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:-1])
    final, usage = chunks[-2], chunks[-1]
    assert final["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert usage["choices"] == [] and usage["usage"] == whole.usage.model_dump(exclude_none=True)
    assert all(c["usage"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == whole.choices[0].message.content


def test_sdk_stream_helper_rebuilds_the_message(client):
    body = {"model": "tiny", "messages": HI, "max_completion_tokens": 6, "n": 2, "seed": 5}
    whole = client.chat.completions.create(**body)
    with client.chat.completions.stream(**body) as stream:
        for _ in stream:
            pass
        # (get_final_completion() refuses an answer cut at its length limit.)
        final = stream.current_completion_snapshot
    for a, b in zip(whole.choices, final.choices, strict=True):
        assert b.message.role == "assistant"
        assert (a.index, a.message.content, a.finish_reason) == (
            b.index,
            b.message.content,
            b.finish_reason,
        )


def test_logprobs_with_bytes_and_alternatives(client):
    r = client.chat.completions.create(
        **greedy(max_completion_tokens=6, logit_bias={EOS: -100}, logprobs=True, top_logprobs=3)
    )
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens == 6
    for e in entries:
        assert e.logprob <= 0 and e.bytes is not None
        assert len(e.top_logprobs) == 3
        values = [t.logprob for t in e.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert e.logprob == pytest.approx(values[0], abs=1e-5)  # greedy picks the top one
    joined = b"".join(bytes(e.bytes) for e in entries).decode("utf-8", errors="replace")
    assert joined == r.choices[0].message.content
    plain = client.chat.completions.create(**greedy(max_completion_tokens=2, logprobs=True))
    assert all(e.top_logprobs == [] for e in plain.choices[0].logprobs.content)


def test_stop_sequence_ends_the_content_before_it(client):
    body = {"model": "tiny", "messages": HI, "seed": 7, "max_completion_tokens": 12}
    body["logit_bias"] = {EOS: -100}
    text = client.chat.completions.create(**body).choices[0].message.content
    stop = text[3:5]
    assert len(stop) == 2, text
    r = client.chat.completions.create(**body, stop=[stop])  # the same seed: the same tokens
    assert r.choices[0].message.content == text[: text.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_same_seed_same_output(client):
    body = {"model": "tiny", "messages": HI, "temperature": 1.0, "max_completion_tokens": 12}
    a = client.chat.completions.create(**body, seed=1234)
    b = client.chat.completions.create(**body, seed=1234)
    c = client.chat.completions.create(**body, seed=99)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.system_fingerprint == b.system_fingerprint
    assert c.choices[0].message.content != a.choices[0].message.content


def test_token_cap_gives_length_and_the_smaller_cap_wins(client):
    r = client.chat.completions.create(
        **greedy(max_completion_tokens=3, max_tokens=5, logit_bias={EOS: -100})
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"store": True}, "store"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
            "response_format.json_schema.name",
        ),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"made_up": 1}, "made_up"),
    ],
)
def test_fields_it_cannot_honour_are_refused_by_name(client, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=HI, extra_body=extra)
    assert info.value.param == param
    assert param in info.value.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages[0].content[0].type",
        ),
        ([{"role": "tool", "content": "x", "tool_call_id": "a"}], "messages[0].role"),
        ([{"role": "user"}], "messages[0].content"),
    ],
)
def test_bad_messages_are_refused_naming_the_message(client, messages, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=messages)
    assert info.value.param == param


def test_context_length_error_names_the_numbers(client):
    long = [{"role": "user", "content": "Hello? " * 1000}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=long, max_completion_tokens=10)
    err = info.value
    assert err.code == "context_length_exceeded" and err.param == "messages"
    assert f"maximum context length is {CONTEXT} tokens" in err.message
    assert "in the messages, 10 in the completion" in err.message


def test_tools_and_tool_turns_are_rendered_into_the_prompt(client):
    plain = client.chat.completions.create(**greedy(max_completion_tokens=2))
    with_tools = client.chat.completions.create(**greedy(max_completion_tokens=2, tools=TOOLS))
    # The tiny template has no place for tools: they go into a system message.
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 50
    turns = [
        *HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    r = client.chat.completions.create(
        model="tiny", messages=turns, tools=TOOLS, tool_choice="auto", max_completion_tokens=2
    )
    assert r.usage.prompt_tokens > with_tools.usage.prompt_tokens
    missing = turns[:2] + [{"role": "user", "content": "and?"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=missing, tools=TOOLS)
    assert info.value.param == "messages[2].role" and "call_1" in info.value.message


def test_streamed_content_with_tools_matches_the_answer(client):
    body = greedy(max_completion_tokens=10, logit_bias={EOS: -100}, tools=TOOLS)
    whole = client.chat.completions.create(**body)
    chunks = list(client.chat.completions.create(**body, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None  # null if the answer were only calls
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == (whole.choices[0].message.content or "")
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


class Answer(BaseModel):
    ok: bool
    mood: Literal["happy", "sad"]


def test_json_schema_answers_parse_into_the_model(client):
    # The tiny model knows nothing of JSON: only the grammar makes these answers valid.
    for seed in (1, 2, 3):
        r = client.chat.completions.parse(
            model="tiny", messages=HI, response_format=Answer, max_completion_tokens=64, seed=seed
        )
        choice = r.choices[0]
        assert choice.finish_reason == "stop"
        assert isinstance(choice.message.parsed, Answer)
    body = {"model": "tiny", "messages": HI, "max_completion_tokens": 64, "seed": 4}
    schema = {
        "name": "answer",
        "strict": True,
        "schema": openai.pydantic_function_tool(Answer)["function"]["parameters"],
    }
    chunks = client.chat.completions.create(
        **body, stream=True, response_format={"type": "json_schema", "json_schema": schema}
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    Answer.model_validate_json(text)


def test_json_object_answers_are_json_objects(client, tiny_model_dir):
    r = client.chat.completions.create(
        model="tiny", messages=HI, response_format={"type": "json_object"},
        max_completion_tokens=40, n=3, seed=5,
    )  # fmt: skip
    for choice in r.choices:
        if choice.finish_reason == "stop":
            assert isinstance(json.loads(choice.message.content), dict)
        else:  # cut at its cap: still a prefix of an object
            assert choice.message.content.startswith("{")
    from transformers import AutoTokenizer

    # Favouring "}" closes the object at once, and then the grammar allows only the end.
    close = AutoTokenizer.from_pretrained(tiny_model_dir).convert_tokens_to_ids("}")
    r = client.chat.completions.create(
        **greedy(response_format={"type": "json_object"}, logit_bias={str(close): 30})
    )
    assert r.choices[0].message.content == "{}" and r.choices[0].finish_reason == "stop"


def test_a_schema_that_cannot_be_enforced_is_refused(client):
    bad = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="tiny",
            messages=HI,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bad}},
        )
    assert info.value.param == "response_format.json_schema.schema"
    assert "nowhere" in info.value.message


TWO_TOOLS = [
    *TOOLS,
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
                "required": ["zone"],
                "additionalProperties": False,
            },
        },
    },
]


def test_a_named_tool_choice_yields_a_call_of_that_function(client):
    named = {"type": "function", "function": {"name": "get_time"}}
    body = {"model": "tiny", "messages": HI, "tools": TWO_TOOLS, "tool_choice": named}
    r = client.chat.completions.create(**body, seed=11, max_completion_tokens=200)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls and all(c.function.name == "get_time" for c in calls)
    assert json.loads(calls[0].function.arguments)["zone"] in ("UTC", "CET")
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    # Streamed: role, then one delta per call with its index, id and name; the same answer.
    chunks = list(client.chat.completions.create(**body, seed=11, max_completion_tokens=200,
                                                 stream=True))  # fmt: skip
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert [d[0].index for d in deltas] == list(range(len(calls)))
    assert [(d[0].function.name, d[0].function.arguments) for d in deltas] == [
        (c.function.name, c.function.arguments) for c in calls
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.choices[0].delta.content is None for c in chunks)


def test_required_without_parallel_calls_gives_one_call_of_a_given_tool(client):
    r = client.chat.completions.create(
        model="tiny", messages=HI, tools=TWO_TOOLS, tool_choice="required",
        parallel_tool_calls=False, seed=12, max_completion_tokens=200,
    )  # fmt: skip
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name in ("get_weather", "get_time")
    assert isinstance(json.loads(call.function.arguments), dict)
    assert r.choices[0].finish_reason == "tool_calls"
