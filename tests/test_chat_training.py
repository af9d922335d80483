"""Chat examples with functions and weights: how training renders them, what it trains on, and
that serving asks a model in the very tokens training used."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from ftui.server import hf
from ftui.server.serving import toolcalls
from ftui.server.training import encode
from ftui.server.training import loss as L
from ftui.server.training import train as T
from tests.test_train import make_job, progress
from tests.tiny_model import build_tokenizer

# A template that shows functions (the transformers convention: ``tools`` and ``tool_calls``).
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n# Tools\n{% for t in tools %}{{ t | tojson }}\n"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function | tojson }}</tool_call>"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def tool_example(city: str = "Paris", skipped: str = "It is 21 degrees.") -> dict:
    """A conversation with a call, its result, a weight-0 reply and a trained reply."""
    return {
        "messages": [
            {"role": "developer", "content": "Use the tools."},
            {"role": "user", "content": [{"type": "text", "text": f"Weather in {city}?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": json.dumps({"city": city}),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "21"},
            {"role": "assistant", "content": skipped, "weight": 0},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "You are welcome."},
        ],
        "tools": [WEATHER],
        "parallel_tool_calls": False,
    }


@pytest.fixture(scope="module", params=["fallback", "template"])
def tokenizer(request):
    """The tiny tokenizer with its own template (which cannot show functions: the fallback
    format is used) and with a template that shows them."""
    tok = build_tokenizer()
    if request.param == "template":
        tok.chat_template = TOOLS_TEMPLATE
    return tok


def runs(mask: list[bool]) -> list[tuple[int, int]]:
    """The [start, end) spans of True in a mask."""
    spans, start = [], None
    for i, flag in enumerate([*mask, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i))
            start = None
    return spans


def test_the_mask_covers_exactly_the_trained_replies(tokenizer):
    specials = hf.specials(tokenizer)
    example = tool_example()
    e = encode.encode_example(tokenizer, specials, example, 10_000)
    replies = [tokenizer.decode(e.ids[a:b]) for a, b in runs(e.completion)]
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert [r.replace(" ", "") for r in replies] == [
        f"<tool_call>{call}</tool_call><|im_end|>".replace(" ", ""),
        "You are welcome.<|im_end|>".replace(" ", ""),
    ]
    text = tokenizer.decode(e.ids)
    assert "It is 21 degrees." in text  # the weight-0 reply is context...
    assert "get_weather" in text.split("<|im_start|>user")[0]  # ...the functions are prompt
    assert not e.prompt_loss  # ...and untrained tokens weigh nothing, whatever the job's plw
    if tokenizer.chat_template == TOOLS_TEMPLATE:
        assert text.startswith("<|im_start|>system\n# Tools\n")  # the template's own format
    else:
        assert text.startswith("<|im_start|>tools\n[")  # the documented fallback


def test_weight_0_reply_contributes_zero_loss(tokenizer, tiny_model_dir):
    """The gradient of the training loss is exactly zero at every position that predicts a
    token of the weight-0 reply (with the job's default prompt_loss_weight of 0.01), and not at
    the trained reply: its tokens are context, never a target."""
    from transformers import AutoModelForCausalLM

    specials = hf.specials(tokenizer)
    e = encode.encode_example(tokenizer, specials, tool_example(), 10_000)
    skipped = tokenizer("It is 21 degrees.", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(e.ids)) if e.ids[i : i + len(skipped)] == skipped)
    span = range(start, start + len(skipped) + 1)  # the reply and its end of turn
    assert not any(e.completion[i] for i in span)

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = L.collate([e], specials.eos_id, prompt_loss_weight=0.01)
    logits = model(input_ids=batch["input_ids"]).logits.detach().requires_grad_()
    loss, counts = L.loss_and_counts(
        logits, batch["input_ids"], batch["target_weights"], batch["completion_targets"]
    )
    loss.backward()
    grad = logits.grad[0].abs().sum(-1)  # position j predicts token j + 1
    assert all(grad[i - 1] == 0 for i in span)
    trained = [i for i in range(1, len(e.ids)) if e.completion[i]]
    assert all(grad[i - 1] > 0 for i in trained)
    assert counts["weight"] == len(trained)  # nothing but trained tokens is weighed

    # Another weight-0 reply gives the trained targets the same weights: only the context of
    # the later reply changes, never what is trained.
    other = encode.encode_example(
        tokenizer, specials, tool_example(skipped="Twenty-one, sunny."), 10_000
    )
    assert sum(other.completion) == sum(e.completion)


def test_served_prompt_tokens_equal_trained_prompt_tokens(tokenizer):
    """For every assistant turn, the ids serving renders for the conversation before it (with
    the generation prompt) are exactly the ids training put before that reply."""
    specials = hf.specials(tokenizer)
    example = tool_example()
    messages, tools = example["messages"], example["tools"]
    e = encode.encode_example(tokenizer, specials, example, 10_000)
    checked = 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        served = encode.chat_prompt_ids(tokenizer, specials, messages[:k], tools)
        assert e.ids[: len(served)] == served
        assert e.completion[len(served)] == (message.get("weight", 1) == 1)
        checked += 1
    assert checked == 3
    # The served prompt ends with the generation prompt, as the template writes it.
    prompt_text = tokenizer.decode(encode.chat_prompt_ids(tokenizer, specials, messages[:2], tools))
    assert prompt_text.endswith("<|im_start|>assistant\n")


def test_older_function_call_form_renders_like_tool_calls(tokenizer):
    specials = hf.specials(tokenizer)
    new = tool_example()
    old = copy.deepcopy(new)
    old["functions"] = [WEATHER["function"]]
    del old["tools"], old["parallel_tool_calls"]
    call = old["messages"][2].pop("tool_calls")[0]
    old["messages"][2]["function_call"] = call["function"]
    old["messages"][3] = {"role": "function", "name": "get_weather", "content": "21"}
    a = encode.encode_example(tokenizer, specials, new, 10_000)
    b = encode.encode_example(tokenizer, specials, old, 10_000)
    decoded = [tokenizer.decode(b.ids[x:y]) for x, y in runs(b.completion)]
    assert decoded == [tokenizer.decode(a.ids[x:y]) for x, y in runs(a.completion)]


def test_chat_examples_are_cut_at_the_end_to_fit_the_context(tokenizer):
    specials = hf.specials(tokenizer)
    e = encode.encode_example(tokenizer, specials, tool_example(), 10_000)
    cut = encode.encode_example(tokenizer, specials, tool_example(), len(e.ids) - 3)
    assert cut.ids == e.ids[: len(e.ids) - 3] and cut.completion == e.completion[: len(cut.ids)]


def test_tool_call_fine_tune_runs_in_process(tmp_path, tiny_model_dir):
    """A current-dialect job on tool-call examples with weights trains and saves a model; its
    logged loss is finite (so every example had trained tokens)."""
    cities = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito", "Seoul", "Delhi"]
    rows = [tool_example(c) for c in cities]
    job = make_job(
        tmp_path / "job", tiny_model_dir, rows, spec={"dialect": "current"}, n_epochs=1,
        batch_size=4,
    )  # fmt: skip
    assert T.run(job) == 0
    steps = [r for r in progress(job) if r["type"] == "step"]
    assert len(steps) == 2 and all(math.isfinite(r["training_loss"]) for r in steps)
    assert torch.isfinite(torch.tensor([r["training_loss"] for r in steps])).all()


def test_calls_in_the_fallback_format_are_read_back(tokenizer):
    """What a model trained on the fallback format writes is parsed back into calls whose
    arguments are JSON strings (as the wire carries them); malformed blocks stay text."""
    example = tool_example("Rome")
    text = encode.render_chat(tokenizer, example["messages"][:3], False, example["tools"])
    reply = text.rsplit("<|im_start|>assistant\n", 1)[1].removesuffix("<|im_end|>\n")
    content, calls = toolcalls.parse(reply)
    assert content is None
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city": "Rome"}'}
    ]
    broken = "Sure.\n<tool_call>{oops}</tool_call>"
    assert toolcalls.parse(broken) == (broken, [])


def test_a_template_that_refuses_a_conversation_is_an_encode_error():
    """A template's own check (here: roles must alternate) is a clear error, not a crash."""
    tok = build_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
        "{{ m.content }}{% endfor %}"
    )
    messages = [{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}]
    with pytest.raises(encode.EncodeError, match="refused this conversation: Conversation roles"):
        encode.encode_chat(tok, hf.specials(tok), messages)
