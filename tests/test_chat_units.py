"""The parts of chat completions that need no server: reading tool calls from a model's output
(whole and streamed) and rendering a chat prompt with tools."""

from __future__ import annotations

import json

import pytest

from ftui.server.serving import toolcalls
from ftui.server.serving.toolcalls import START
from ftui.server.training.encode import PromptTooLong, render_chat_prompt

# What Qwen2.5-Instruct writes for two parallel calls (its template's format).
QWEN_OUTPUT = (
    "<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n'
    "</tool_call>\n"
    "<tool_call>\n"
    '{"name": "get_time", "arguments": {"tz": "Europe/Paris"}}\n'
    "</tool_call>"
)


def test_calls_are_read_with_ids_and_json_arguments():
    content, calls = toolcalls.parse(QWEN_OUTPUT)
    assert content is None
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]


def test_text_around_calls_is_the_content_and_unparsable_output_stays_text():
    content, calls = toolcalls.parse("Let me check.\n" + QWEN_OUTPUT)
    assert content == "Let me check.\n\n" and len(calls) == 2
    broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": </tool_call>'
    assert toolcalls.parse(broken) == (broken, [])
    assert toolcalls.parse("no calls here") == ("no calls here", [])
    # A last block cut short of its end tag (the model stopped at its end-of-text) still counts.
    _, calls = toolcalls.parse('<tool_call>{"name": "f", "parameters": {"a": 1}}')
    assert calls[0]["function"] == {"name": "f", "arguments": '{"a": 1}'}


@pytest.mark.parametrize(
    "text",
    [
        "Let me check. " + QWEN_OUTPUT,
        "  \n" + QWEN_OUTPUT,
        "Plain answer, no calls <tool_ and a lone < sign.",
        '<tool_call>{"name": oops}</tool_call> after',
    ],
)
@pytest.mark.parametrize("size", [1, 3, 7])
def test_streamed_reading_gives_what_whole_reading_gives(text, size):
    reader = toolcalls.ToolText()
    released = "".join(reader.feed(text[i : i + size]) for i in range(0, len(text), size))
    rest = reader.finish()
    content, calls = toolcalls.parse(text)
    assert released + rest == (content or "")
    assert [c["function"] for c in reader.calls] == [c["function"] for c in calls]
    assert START not in released  # nothing of a call was released as content


def test_the_served_chat_prompt_is_the_trained_one_and_is_bounded(tiny_model_dir):
    """Serving renders a conversation with training's own renderer (tools included, in the
    fallback format for a template without them) and refuses one over the limit."""
    from transformers import AutoTokenizer

    from ftui.server.hf import specials as specials_of
    from ftui.server.training.encode import chat_prompt_ids

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    specials = specials_of(tok)
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    messages = [{"role": "user", "content": "Hi"}]
    ids = render_chat_prompt(tok, specials, messages, tools)
    assert ids == chat_prompt_ids(tok, specials, messages, tools)
    text = tok.decode(ids)
    assert '"name": "get_weather"' in text
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(PromptTooLong) as info:
        render_chat_prompt(tok, specials, messages, tools, max_len=10)
    assert info.value.tokens > 10
