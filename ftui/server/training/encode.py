"""Text to token ids for training and serving: prompts, prompt/completion pairs and chat
transcripts (rendered with the tokenizer's chat template, or ChatML when it has none), with the
mask that says which tokens are completion.

A prompt's ids come from :func:`prompt_ids` in both training and serving, so a fine-tuned model
is served the very tokens it was trained on. The rule for a prompt: the tokenizer's ids for the
text with its special tokens (a BOS, if this tokenizer adds one), minus an end-of-text that the
*tokenizer* appended (it must not sit between prompt and completion). An end-of-text the user
wrote at the end of the prompt (``"...<|endoftext|>"``) is part of the prompt and stays, in both.
An empty prompt is conditioned on the model's start token (:func:`with_start`).

A completion is tokenized on its own and gets the training end-of-text appended, so the model
learns to stop; tokenizing prompt and completion separately makes the boundary match serving,
where the prompt is tokenized alone.

No torch here; only the tokenizer object is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ftui.server.hf import Specials

CHATML_FALLBACK = "<|im_start|>{role}\n{content}<|im_end|>\n"
CHATML_GENERATION_PROMPT = "<|im_start|>assistant\n"


class EncodeError(ValueError):
    """An example that cannot be encoded (the message is meant for the user)."""


@dataclass
class Encoded:
    """One tokenized example: ``completion[i]`` says whether token i belongs to a completion."""

    ids: list[int]
    completion: list[bool]


def token_ids(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []


def prompt_ids(tokenizer: Any, specials: Specials, text: str) -> list[int]:
    """The ids of a prompt's text (see the module's rule); empty for an empty text."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if specials.appends_eos and ids and ids[-1] in specials.eos_ids:
        ids.pop()
    return ids


def with_start(ids: list[int], specials: Specials) -> list[int]:
    """What the model is conditioned on for a prompt: its ids, or the start token when it has
    none (when the model has no start token either, nothing)."""
    if ids or specials.start_id is None:
        return ids
    return [specials.start_id]


def encode_legacy(tokenizer: Any, specials: Specials, prompt: str, completion: str) -> Encoded:
    """A prompt/completion pair: the prompt as served, then the completion and end-of-text."""
    assert specials.eos_id is not None
    p = with_start(prompt_ids(tokenizer, specials, prompt), specials)
    c = token_ids(tokenizer, completion) + [specials.eos_id]
    return Encoded(p + c, [False] * len(p) + [True] * len(c))


def render_chat(tokenizer: Any, messages: list[dict], generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    text = "".join(CHATML_FALLBACK.format(**m) for m in messages)
    return text + (CHATML_GENERATION_PROMPT if generation_prompt else "")


class PromptTooLong(EncodeError):
    """A rendered chat prompt with more tokens than allowed."""

    def __init__(self, tokens: int, max_len: int) -> None:
        super().__init__(f"the messages have {tokens} tokens; at most {max_len} fit")
        self.tokens = tokens


# For a chat template that has no place for tools: the format Qwen2.5 and SmolLM2's templates
# use (tool signatures inside <tools></tools> in the system prompt, calls as <tool_call>{json}
# </tool_call>), which is also the format the tool-call parser of serving reads.
TOOLS_FALLBACK = (
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{tools}\n</tools>\n\nFor each function call, return a json object with function name "
    "and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


def asks_for_tool_call_tags(tokenizer: Any) -> bool:
    """Whether a model is asked to write tool calls as ``<tool_call>{json}</tool_call>``: its
    template uses those tags, or has no place for tools (then TOOLS_FALLBACK asks for them)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "tools" not in template or "<tool_call>" in template


def render_chat_prompt(
    tokenizer: Any,
    specials: Specials,
    messages: list[dict],
    tools: list[dict] | None = None,
    max_len: int | None = None,
) -> list[int]:
    """The ids of a chat conversation as serving asks a model: the chat template with its
    generation prompt (ChatML without one), tools rendered by the template, or, when it has no
    place for them, as :data:`TOOLS_FALLBACK` in the system message. Messages are plain
    {role, content(str), ...} dicts. Raises PromptTooLong above ``max_len`` tokens."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if tools and "tools" not in template:
        block = TOOLS_FALLBACK.format(tools="\n".join(json.dumps(t) for t in tools))
        if messages and messages[0]["role"] == "system":
            first = messages[0]
            messages = [{**first, "content": f"{first['content']}\n\n{block}"}, *messages[1:]]
        else:
            messages = [{"role": "system", "content": block}, *messages]
        tools = None
    if "tool_calls" not in template:  # calls the model made, written as it is asked to write them
        messages = [_calls_as_text(m) if m.get("tool_calls") else m for m in messages]
    if template:
        text = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
    else:
        text = render_chat(tokenizer, messages, generation_prompt=True)
    ids = with_start(token_ids(tokenizer, text), specials)
    if max_len is not None and len(ids) > max_len:
        raise PromptTooLong(len(ids), max_len)
    return ids


def _calls_as_text(message: dict) -> dict:
    calls = [
        "<tool_call>\n"
        + json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]})
        + "\n</tool_call>"
        for c in message["tool_calls"]
    ]
    content = "\n".join([message.get("content") or "", *calls]).lstrip("\n")
    return {k: v for k, v in message.items() if k != "tool_calls"} | {"content": content}


def chat_segments(tokenizer: Any, messages: list[dict]) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_completion) pieces: each assistant reply is
    the text the template adds after the generation prompt (prompt too if its "weight" is 0);
    everything else is prompt.
    Messages after the last assistant reply teach nothing and are dropped."""
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], generation_prompt=True)
        through = render_chat(tokenizer, messages[: i + 1], generation_prompt=False)
        if not before.startswith(done) or not through.startswith(before):
            raise EncodeError(
                "The base model's chat template does not render this conversation as a "
                "growing prefix, so its assistant replies cannot be located (does it start "
                "with an assistant message?)."
            )
        trained = message.get("weight", 1) != 0  # current API: weight 0 skips a reply
        segments += [(before[len(done) :], False), (through[len(before) :], trained)]
        done = through
    return segments


def encode_chat(tokenizer: Any, specials: Specials, messages: list[dict]) -> Encoded:
    eos_id = specials.eos_id
    assert eos_id is not None
    ids: list[int] = []
    completion: list[bool] = []
    for text, is_completion in chat_segments(tokenizer, messages):
        seg = token_ids(tokenizer, text)
        flags = [is_completion] * len(seg)
        if is_completion:
            if eos_id in seg:
                # What the template adds after the end of turn (often "\n") is not the reply.
                last = len(seg) - 1 - seg[::-1].index(eos_id)
                flags = [True] * (last + 1) + [False] * (len(seg) - last - 1)
            else:
                seg, flags = seg + [eos_id], flags + [True]
        ids += seg
        completion += flags
    # What the template adds after the last reply (e.g. "\n") is not worth a training target.
    end = len(completion) - completion[::-1].index(True) if True in completion else len(ids)
    return Encoded(ids[:end], completion[:end])


def truncate(example: Encoded, max_len: int) -> Encoded:
    """Fit the context: drop tokens from the start of the prompt; a completion longer than the
    context on its own keeps its beginning."""
    if len(example.ids) <= max_len:
        return example
    first = example.completion.index(True) if True in example.completion else 0
    if len(example.ids) - first > max_len:
        return Encoded(
            example.ids[first : first + max_len], example.completion[first : first + max_len]
        )
    return Encoded(example.ids[-max_len:], example.completion[-max_len:])


def encode_example(tokenizer: Any, specials: Specials, example: dict, max_len: int) -> Encoded:
    """A training example (as records.py checks it) as ids and completion mask, fitted to
    ``max_len`` tokens (the model's context)."""
    if "messages" in example:
        encoded = encode_chat(tokenizer, specials, example["messages"])
    else:
        encoded = encode_legacy(tokenizer, specials, example["prompt"], example["completion"])
    return truncate(encoded, max_len)


def scoring_prompt(tokenizer: Any, specials: Specials, prompt: str, max_len: int) -> list[int]:
    """A prompt as classification metrics score it: as served, keeping its last ``max_len - 1``
    tokens so that one more position fits the context."""
    return with_start(prompt_ids(tokenizer, specials, prompt), specials)[-(max_len - 1) :]
