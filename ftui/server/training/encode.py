"""Text to token ids for training and serving: prompts, prompt/completion pairs and chat
conversations (rendered with the tokenizer's chat template, given the example's functions when
the template shows them, or a ChatML fallback described at ``CHATML_TURN``), with the mask that
says which tokens are trained.

Chat: :func:`encode_chat` (training) and :func:`chat_prompt_ids` (serving, with the generation
prompt) cut the rendering into the same pieces and tokenize each on its own, so the prompt
tokens of a conversation are the same in both.

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
from dataclasses import dataclass, replace
from typing import Any

from ftui.records import content_text, uses_tools
from ftui.server.hf import Specials


class EncodeError(ValueError):
    """An example that cannot be encoded (the message is meant for the user)."""


@dataclass
class Encoded:
    """One tokenized example: ``completion[i]`` says whether token i is trained (a completion,
    or a trained assistant reply). ``prompt_loss``: whether the other tokens take the legacy
    ``prompt_loss_weight`` (prompt/completion pairs) or weigh nothing (chat: only trained
    assistant tokens count, as the hosted service trained chat)."""

    ids: list[int]
    completion: list[bool]
    prompt_loss: bool = True


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


# ---------------------------------------------------------------- chat

# The fallback format, for a tokenizer without a chat template (or whose template cannot show
# functions, for a conversation that uses them): ChatML. The functions an example defines come
# first, as a JSON list in a "tools" turn; an assistant's calls follow its text, one
# ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` per call (one per line); tool and
# function results are "tool" turns; developer messages are "system" turns; names are not shown.
CHATML_TURN = "<|im_start|>{role}\n{content}<|im_end|>\n"
CHATML_GENERATION_PROMPT = "<|im_start|>assistant\n"
TOOL_CALL = "<tool_call>{}</tool_call>"


def example_tools(example: dict) -> list[dict] | None:
    """The functions a chat example defines, in the ``tools`` form (``functions``, the older
    form, wrapped as ``{"type": "function", "function": f}``); None when it defines none."""
    if "tools" in example:
        return example["tools"]
    if "functions" in example:
        return [{"type": "function", "function": f} for f in example["functions"]]
    return None


def template_renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template shows function definitions and calls (it reads
    ``tools`` and ``tool_calls``); templates that do not would drop them silently."""
    source = str(getattr(tokenizer, "chat_template", None) or "")
    return "tools" in source and "tool_calls" in source


def uses_fallback(tokenizer: Any, messages: list[dict], tools: list[dict] | None) -> bool:
    if not getattr(tokenizer, "chat_template", None):
        return True
    return uses_tools({"messages": messages, **({"tools": tools} if tools else {})}) and (
        not template_renders_tools(tokenizer)
    )


def _calls(message: dict) -> list[dict]:
    """An assistant message's calls as ``{"id"?, "name", "arguments": <object>}``."""
    if "function_call" in message:
        raw = [{"function": message["function_call"]}]
    else:
        raw = message.get("tool_calls") or []
    calls = []
    for call in raw:
        fn = call["function"]
        arguments = (
            json.loads(fn["arguments"]) if isinstance(fn["arguments"], str) else fn["arguments"]
        )
        calls.append(
            {
                **({"id": call["id"]} if "id" in call else {}),
                "name": fn["name"],
                "arguments": arguments,
            }
        )
    return calls


def template_message(message: dict) -> dict:
    """A message as chat templates expect it (the transformers convention): content one string,
    developer as system, the older function role as tool, calls as ``tool_calls`` whose
    arguments are objects, no ``weight``."""
    role = {"developer": "system", "function": "tool"}.get(message["role"], message["role"])
    out: dict[str, Any] = {"role": role, "content": content_text(message.get("content"))}
    for key in ("name", "tool_call_id"):
        if key in message:
            out[key] = message[key]
    calls = _calls(message) if message["role"] == "assistant" else []
    if calls:
        out["tool_calls"] = [
            {
                **({"id": c["id"]} if "id" in c else {}),
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ]
    return out


def _fallback_turn(message: dict) -> str:
    role = {"developer": "system", "function": "tool"}.get(message["role"], message["role"])
    text = content_text(message.get("content"))
    if message["role"] == "assistant":
        shown = [
            TOOL_CALL.format(
                json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False)
            )
            for c in _calls(message)
        ]
        text = "\n".join(([text] if text else []) + shown)
    return CHATML_TURN.format(role=role, content=text)


def render_chat(
    tokenizer: Any,
    messages: list[dict],
    generation_prompt: bool,
    tools: list[dict] | None = None,
) -> str:
    """A conversation (messages as records.py checks them) as text: the base model's chat
    template (given ``tools=`` when there are any), or the fallback format above."""
    if uses_fallback(tokenizer, messages, tools):
        head = CHATML_TURN.format(role="tools", content=json.dumps(tools, ensure_ascii=False))
        text = (head if tools else "") + "".join(_fallback_turn(m) for m in messages)
        return text + (CHATML_GENERATION_PROMPT if generation_prompt else "")
    kwargs = {"tools": tools} if tools else {}
    try:
        return tokenizer.apply_chat_template(
            [template_message(m) for m in messages],
            tokenize=False,
            add_generation_prompt=generation_prompt,
            **kwargs,
        )
    except Exception as exc:  # the template's own checks (raise_exception), or a Jinja error
        raise EncodeError(
            f"The base model's chat template refused this conversation: {exc}"
        ) from exc


@dataclass
class _Segment:
    text: str
    reply: bool  # the text of an assistant message
    trained: bool  # ... with weight 1


def chat_segments(
    tokenizer: Any,
    messages: list[dict],
    tools: list[dict] | None = None,
    generation_prompt: bool = False,
) -> list[_Segment]:
    """The rendered conversation cut into pieces: each assistant reply is the text the template
    adds after the generation prompt; everything else is prompt. Without ``generation_prompt``
    the messages after the last assistant reply teach nothing and are dropped; with it, the
    last piece is the prompt for the next reply (what serving asks the model)."""
    segments: list[_Segment] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], True, tools)
        through = render_chat(tokenizer, messages[: i + 1], False, tools)
        if not before.startswith(done) or not through.startswith(before):
            raise EncodeError(
                "The base model's chat template does not render this conversation as a "
                "growing prefix, so its assistant replies cannot be located (does it start "
                "with an assistant message?)."
            )
        trained = message.get("weight", 1) != 0  # weight 0: context, not a target
        segments += [
            _Segment(before[len(done) :], False, False),
            _Segment(through[len(before) :], True, trained),
        ]
        done = through
    if generation_prompt:
        prompt = render_chat(tokenizer, messages, True, tools)
        if not prompt.startswith(done):
            raise EncodeError(
                "The base model's chat template does not render this conversation as a "
                "growing prefix, so it cannot be continued as it was trained."
            )
        segments.append(_Segment(prompt[len(done) :], False, False))
    return segments


def _chat_ids(
    tokenizer: Any, specials: Specials, segments: list[_Segment]
) -> tuple[list[int], list[bool]]:
    """Ids and trained mask of the segments, each tokenized on its own (so a prompt tokenizes
    the same whether or not a reply follows). A reply ends with end-of-text (appended when the
    template has none); what the template adds after it (often "\\n") is not the reply."""
    eos_id = specials.eos_id
    assert eos_id is not None
    ids: list[int] = []
    trained: list[bool] = []
    for segment in segments:
        seg = token_ids(tokenizer, segment.text)
        flags = [False] * len(seg)
        if segment.reply:
            if eos_id in seg:
                last = len(seg) - 1 - seg[::-1].index(eos_id)
            else:
                seg, flags, last = seg + [eos_id], flags + [False], len(seg)
            flags = [segment.trained] * (last + 1) + [False] * (len(seg) - last - 1)
        ids += seg
        trained += flags
    return ids, trained


def encode_chat(
    tokenizer: Any, specials: Specials, messages: list[dict], tools: list[dict] | None = None
) -> Encoded:
    """A chat example as ids and trained mask: True on exactly the tokens of the assistant
    replies that are trained (weight 1 or absent), through their end-of-text. Untrained tokens
    weigh nothing in the loss (``prompt_loss=False``)."""
    ids, trained = _chat_ids(tokenizer, specials, chat_segments(tokenizer, messages, tools))
    # What follows the last reply (e.g. "\n", or a weight-0 reply) is not worth a position.
    end = len(trained) - trained[::-1].index(True) if True in trained else len(ids)
    return Encoded(ids[:end], trained[:end], prompt_loss=False)


def chat_prompt_ids(
    tokenizer: Any, specials: Specials, messages: list[dict], tools: list[dict] | None = None
) -> list[int]:
    """The ids serving gives the model for a conversation: its rendering plus the generation
    prompt, tokenized exactly as training tokenized the same conversation before a reply (so a
    model fine-tuned on chat is asked in the tokens it learned)."""
    segments = chat_segments(tokenizer, messages, tools, generation_prompt=True)
    return _chat_ids(tokenizer, specials, segments)[0]


class PromptTooLong(EncodeError):
    """A rendered chat prompt with more tokens than allowed."""

    def __init__(self, tokens: int, max_len: int) -> None:
        super().__init__(f"the messages have {tokens} tokens; at most {max_len} fit")
        self.tokens = tokens


def asks_for_tool_call_tags(tokenizer: Any) -> bool:
    """Whether a model writes tool calls as ``<tool_call>{json}</tool_call>`` (what serving's
    parser reads): its template uses those tags, or it has no place for tools and the fallback
    format (which writes calls that way) is used."""
    return not template_renders_tools(tokenizer) or "<tool_call>" in (
        getattr(tokenizer, "chat_template", None) or ""
    )


def render_chat_prompt(
    tokenizer: Any,
    specials: Specials,
    messages: list[dict],
    tools: list[dict] | None = None,
    max_len: int | None = None,
) -> list[int]:
    """Serving's chat prompt: exactly :func:`chat_prompt_ids` (the tokens training used for the
    same conversation), refused with :class:`PromptTooLong` above ``max_len`` tokens."""
    ids = chat_prompt_ids(tokenizer, specials, messages, tools)
    if max_len is not None and len(ids) > max_len:
        raise PromptTooLong(len(ids), max_len)
    return ids


def truncate(example: Encoded, max_len: int) -> Encoded:
    """Fit the context. A prompt/completion pair drops tokens from the start of its prompt (a
    completion longer than the context on its own keeps its beginning). A chat example is cut
    at the end, as the hosted service did: its first turns stay, trailing replies are lost."""
    if len(example.ids) <= max_len:
        return example
    if not example.prompt_loss:
        return replace(example, ids=example.ids[:max_len], completion=example.completion[:max_len])
    first = example.completion.index(True) if True in example.completion else 0
    if len(example.ids) - first > max_len:
        return Encoded(
            example.ids[first : first + max_len], example.completion[first : first + max_len]
        )
    return Encoded(example.ids[-max_len:], example.completion[-max_len:])


def encode_example(tokenizer: Any, specials: Specials, example: dict, max_len: int) -> Encoded:
    """A training example (as records.py checks it) as ids and trained mask, fitted to
    ``max_len`` tokens (the model's context)."""
    if "messages" in example:
        encoded = encode_chat(tokenizer, specials, example["messages"], example_tools(example))
    else:
        encoded = encode_legacy(tokenizer, specials, example["prompt"], example["completion"])
    return truncate(encoded, max_len)


def scoring_prompt(tokenizer: Any, specials: Specials, prompt: str, max_len: int) -> list[int]:
    """A prompt as classification metrics score it: as served, keeping its last ``max_len - 1``
    tokens so that one more position fits the context."""
    return with_start(prompt_ids(tokenizer, specials, prompt), specials)[-(max_len - 1) :]
