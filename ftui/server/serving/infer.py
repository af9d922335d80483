"""Generation for `/v1/completions`: prompt preparation, budget checks and a KV-cache decoding
loop, on models loaded by `model_cache` (which loads and encodes as training does).

torch is imported inside functions only, so the server starts without it.

The decoding loop prefills the prompt once, repeats the cache for the n samples of that prompt,
then feeds one token per row per step. Per step and row it computes the raw log-probabilities
(reported in `logprobs`), applies `logit_bias` and the presence/frequency penalties to the
logits, then picks greedily (temperature 0) or samples with temperature and top_p from a seeded
generator. Text is produced by the incremental detokenizer and the per-choice text state of
`choicetext`, so that streamed and non-streamed output are made by the same code.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftui.server.hf import import_torch
from ftui.server.serving.choicetext import ChoiceText, Detokenizer, Token, token_start
from ftui.server.serving.model_cache import LoadedModel, TooManyTokens, env_mb, physical_memory
from ftui.server.training.encode import with_start
from ftui.textsafe import first_surrogate

KV_MEMORY_FRACTION = 0.25  # of physical memory, for one request's key/value cache
NUCLEUS_CANDIDATES = 1024  # top_p sorts these first (see _choose)


class RequestError(ValueError):
    """A request that cannot be served as asked (becomes a 400 naming ``param``)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


# ---------------------------------------------------------------- prompts


@dataclass
class Prompt:
    ids: list[int]  # what the model is conditioned on
    hidden: int = 0  # leading ids that are not part of the user's prompt (empty prompt → BOS)


def context_error(
    entry: LoadedModel, prompt_tokens: int, max_tokens: int, at_least: bool = False
) -> RequestError:
    more = "at least " if at_least else ""
    return RequestError(
        f"This model's maximum context length is {entry.context} tokens, however you "
        f"requested {more}{prompt_tokens + max_tokens} tokens ({more}{prompt_tokens} in your "
        f"prompt; {max_tokens} for the completion). Please reduce your prompt; or completion "
        "length.",
        param="max_tokens",
        code="context_length_exceeded",
    )


def prepare_prompt(
    entry: LoadedModel, prompt: str | list[int], max_tokens: int | None = None
) -> Prompt:
    """A prompt's ids. With ``max_tokens``, a prompt that cannot fit the context beside them is
    refused as soon as that is known (context_length_exceeded): a long text before it is
    tokenized to its end, a long list of ids before its ids are checked."""
    room = None if max_tokens is None else entry.context - max_tokens  # tokens the prompt may have

    def too_long(tokens: int, at_least: bool = False) -> RequestError:
        assert max_tokens is not None
        return context_error(entry, tokens, max_tokens, at_least)

    if isinstance(prompt, str):
        where = first_surrogate(prompt)
        if where is not None:
            raise RequestError(
                f"'prompt' holds a lone surrogate ({prompt[where]!r} at character {where}), "
                "which is not valid Unicode text.",
                param="prompt",
            )
        try:
            ids = entry.encode(prompt, room)
        except TooManyTokens as exc:
            raise too_long(exc.at_least, at_least=True) from None
    else:
        if room is not None and len(prompt) > room:
            raise too_long(len(prompt))
        end = min(entry.vocab_size, entry.tokenizer_size)
        bad = next((t for t in prompt if not 0 <= t < end), None)
        if bad is not None:
            raise RequestError(
                f"'prompt' contains token id {bad}, but this model's token ids are 0 to {end - 1}.",
                param="prompt",
            )
        ids = list(prompt)
    if room is not None and len(ids) > room:
        raise too_long(len(ids))
    conditioned = with_start(ids, entry.specials)  # as training conditions an empty prompt
    if not conditioned:
        raise RequestError("'prompt' is empty and this model has no start token.", "prompt")
    return Prompt(conditioned, hidden=len(conditioned) - len(ids))


def check_budget(
    entry: LoadedModel,
    prompts: Sequence[Prompt],
    max_tokens: int,
    rows: int,
    prompt_logprobs: bool = False,
) -> None:
    """Refuse requests that do not fit the context window, or would need too much memory."""
    longest = max(len(p.ids) for p in prompts)
    if longest + max_tokens > entry.context:
        raise context_error(entry, longest, max_tokens)
    limit = env_mb("FTUI_KV_LIMIT_MB") or int(physical_memory() * KV_MEMORY_FRACTION)
    need = entry.kv_bytes_per_token * rows * (longest + max_tokens)
    if need > limit:
        raise RequestError(
            f"This request would need about {need / 2**30:.1f} GiB of key/value cache "
            f"({rows} sequences of up to {longest + max_tokens} tokens), more than the "
            f"{limit / 2**30:.1f} GiB allowed; reduce n, best_of or max_tokens.",
            param="n",
        )
    # Scoring an echoed prompt keeps the logits of every prompt position, and their log-softmax.
    need = 2 * 4 * entry.vocab_size * longest if prompt_logprobs else 0
    if need > limit:
        raise RequestError(
            f"Log-probabilities of a {longest}-token echoed prompt would need about "
            f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB allowed; shorten "
            "the prompt or leave out echo or logprobs.",
            param="prompt",
        )


# ---------------------------------------------------------------- generation


@dataclass
class Sampling:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: int | None = None
    echo: bool = False
    constraint: Any = None  # a grammar.Constraint: structured output (chat response_format)


@dataclass
class GenerationEvent:
    """What generation reports, in order, for each choice of a prompt:
    ``echo`` (once, with the prompt's text and tokens when echo is on), ``text`` (once per
    generated token that is released, plus rarely a flushed remainder), then ``finish``."""

    kind: str
    choice: int
    text: str = ""
    tokens: list[Token] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    logprob_sum: float = 0.0


class Cancelled(Exception):
    pass


def _top(values: list[float], ids: list[int], entry: LoadedModel) -> dict[str, float]:
    top: dict[str, float] = {}
    for lp, tid in zip(values, ids, strict=True):
        top.setdefault(entry.token_text(tid), lp)
    return top


def _with_chosen(top: dict[str, float], text: str, lp: float) -> dict[str, float]:
    if text not in top:
        top[text] = lp  # the sampled token, when it is not among the top alternatives
    return dict(sorted(top.items(), key=lambda kv: -kv[1]))


def echo_tokens(
    entry: LoadedModel, prompt: Prompt, prompt_logits: Any | None, k: int | None
) -> tuple[str, list[Token]]:
    """The prompt's text and tokens (offsets into that text); with logits, their logprobs
    (the first token has none: nothing precedes it)."""
    torch = import_torch()
    ids = prompt.ids[prompt.hidden :]
    detok = Detokenizer(entry.decode, [])
    text = ""
    tokens: list[Token] = []
    lps = tops = None
    if prompt_logits is not None and len(prompt.ids) > 1:
        logp = torch.log_softmax(prompt_logits[:-1].float(), dim=-1)
        targets = torch.tensor(prompt.ids[1:], device=logp.device)
        lps = logp.gather(1, targets[:, None]).squeeze(1).tolist()
        if k:
            tv, ti = logp.topk(k, dim=-1)
            tops = (tv.tolist(), ti.tolist())
    for i, tid in enumerate(ids):
        pos = i + prompt.hidden  # position in prompt.ids
        lp = top = None
        if prompt_logits is not None and pos > 0:
            lp = lps[pos - 1]
            base = _top(tops[0][pos - 1], tops[1][pos - 1], entry) if tops else {}
            top = _with_chosen(base, entry.token_text(tid), lp)
        delta = detok.push(tid, final=i == len(ids) - 1)
        offset = token_start(len(text), delta, entry.token_text(tid))
        tokens.append(Token(tid, entry.token_text(tid), lp, top, offset=offset))
        text += delta
    return text, tokens


def generate(
    entry: LoadedModel,
    prompt: Prompt,
    sampling: Sampling,
    n: int,
    generator: Any,
    emit: Callable[[GenerationEvent], None],
    cancel: threading.Event | None = None,
) -> None:
    """Generate ``n`` choices for one prompt, reporting Events through ``emit``.

    Call inside ``torch.inference_mode()``. Raises Cancelled when ``cancel`` is set.
    """
    torch = import_torch()
    model, device = entry.model, entry.device
    want_lp = sampling.logprobs is not None
    k = sampling.logprobs or 0
    prompt_lp = sampling.echo and want_lp
    cancel = cancel or threading.Event()

    echo_text, logits, cache = "", None, None
    if sampling.max_tokens > 0 or prompt_lp:
        input_ids = torch.tensor([prompt.ids], device=device)
        kwargs = {"use_cache": sampling.max_tokens > 0, "logits_to_keep": 0 if prompt_lp else 1}
        out = model(input_ids=input_ids, **kwargs)
        logits = out.logits[0]
        cache = out["cache"] if "cache" in out else getattr(out, "past_key_values", None)
    if sampling.echo:
        echo_text, prompt_tokens = echo_tokens(entry, prompt, logits if prompt_lp else None, k)
        for c in range(n):
            emit(
                GenerationEvent(
                    "echo", c, echo_text, [_copy(t) for t in prompt_tokens] if want_lp else []
                )
            )
    if sampling.max_tokens == 0:
        for c in range(n):
            emit(GenerationEvent("finish", c, finish_reason="length"))
        return
    if cancel.is_set():
        raise Cancelled

    last = logits[-1:].float()
    if n > 1:
        cache.batch_repeat_interleave(n)
        last = last.expand(n, -1)
    vocab = last.shape[-1]
    bias = None
    if sampling.logit_bias:
        bias = torch.zeros(vocab, device=device)
        index = torch.tensor(list(sampling.logit_bias), dtype=torch.long, device=device)
        bias[index] = torch.tensor(
            list(sampling.logit_bias.values()), dtype=bias.dtype, device=device
        )
    matchers = sampling.constraint.start(n) if sampling.constraint is not None else None
    penalize = bool(sampling.presence_penalty or sampling.frequency_penalty)
    counts = torch.zeros(n, vocab, device=device) if penalize else None

    base = len(echo_text)
    texts = [ChoiceText(sampling.stop, base) for _ in range(n)]
    detoks = [Detokenizer(entry.decode, prompt.ids) for _ in range(n)]
    sampled = [0] * n
    lp_sums = [0.0] * n
    active = list(range(n))  # the choice each row of the batch belongs to
    for step in range(sampling.max_tokens):
        if cancel.is_set():
            raise Cancelled
        final_step = step == sampling.max_tokens - 1
        raw = torch.log_softmax(last, dim=-1)
        scores = last
        if bias is not None:
            scores = scores + bias
        if counts is not None:
            scores = (
                scores
                - counts * sampling.frequency_penalty
                - (counts > 0).float() * sampling.presence_penalty
            )
        if matchers is not None:  # last: the grammar has the final word on what may come next
            scores = matchers.apply(scores, active)
        chosen = _choose(torch, scores, sampling, generator)
        chosen_lp = raw.gather(1, chosen[:, None]).squeeze(1).tolist()
        tops = None
        if want_lp and k:
            tv, ti = raw.topk(k, dim=-1)
            tops = (tv.tolist(), ti.tolist())
        chosen_ids = chosen.tolist()
        if matchers is not None:
            matchers.advance(active, chosen_ids)
        keep = []
        for row, c in enumerate(active):
            tid, lp = chosen_ids[row], chosen_lp[row]
            sampled[c] += 1
            lp_sums[c] += lp
            state = texts[c]
            if tid in entry.eos_ids:
                pieces = state.add(None, detoks[c].flush()) + state.close()
                reason = "stop"
            else:
                token_text = entry.token_text(tid)
                top = None
                if want_lp:
                    base_top = _top(tops[0][row], tops[1][row], entry) if tops else {}
                    top = _with_chosen(base_top, token_text, lp)
                token = Token(tid, token_text, lp if want_lp else None, top)
                pieces = state.add(token, detoks[c].push(tid, final=final_step))
                reason = "stop" if state.stopped else None
                if reason is None and final_step:
                    pieces += state.close()
                    reason = "length"
            for piece in pieces:
                tokens = [piece.token] if piece.token is not None and want_lp else []
                emit(GenerationEvent("text", c, piece.text, tokens))
            if reason is None:
                keep.append(row)
            else:
                emit(GenerationEvent("finish", c, "", [], reason, sampled[c], lp_sums[c]))
        if counts is not None:
            counts[torch.arange(len(active), device=device), chosen] += 1
        if not keep:
            return
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            chosen = chosen[index]
            if counts is not None:
                counts = counts[index]
            active = [active[r] for r in keep]
        out = model(input_ids=chosen[:, None], use_cache=True, **{entry.cache_arg: cache})
        last = out.logits[:, -1, :].float()


def _copy(token: Token) -> Token:
    top = dict(token.top) if token.top else None
    return Token(token.id, token.text, token.logprob, top, token.offset)


def _choose(torch: Any, scores: Any, sampling: Sampling, generator: Any) -> Any:
    if sampling.temperature == 0:
        return scores.argmax(dim=-1)
    probs = torch.softmax(scores / sampling.temperature, dim=-1)
    if sampling.top_p >= 1:
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    # Nucleus sampling needs the probabilities in order. The nucleus nearly always lies within
    # the top few hundred tokens: sort only those (a full sort of a 49k vocabulary costs ~4 ms
    # a step), and sort everything only when they do not reach top_p.
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    sorted_p, order = probs.topk(k, dim=-1)
    cumulative = sorted_p.cumsum(dim=-1)
    if k < probs.shape[-1] and not bool((cumulative[:, -1] >= sampling.top_p).all()):
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cumulative = sorted_p.cumsum(dim=-1)
    drop = (cumulative - sorted_p) >= sampling.top_p
    drop[:, 0] = False  # the most likely token always stays
    pick = torch.multinomial(sorted_p.masked_fill(drop, 0.0), 1, generator=generator)
    return order.gather(1, pick).squeeze(1)


def make_generator(device: str, seed: int | None) -> Any:
    torch = import_torch()
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed % (1 << 64))
    return generator


@contextlib.contextmanager
def inference() -> Any:
    torch = import_torch()
    with torch.inference_mode():
        yield


def mean_logprob(event: GenerationEvent) -> float:
    """best_of ranks candidates by log probability per token."""
    return event.logprob_sum / event.completion_tokens if event.completion_tokens else -math.inf
