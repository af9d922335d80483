"""Generation for `/v1/completions`: a model cache, prompt preparation and a KV-cache decoding loop.

torch and transformers are imported inside functions only, so the server starts without them.

The decoding loop prefills the prompt once, repeats the cache for the n samples of that prompt,
then feeds one token per row per step. Per step and row it computes the raw log-probabilities
(reported in `logprobs`), applies `logit_bias` and the presence/frequency penalties to the
logits, then picks greedily (temperature 0) or samples with temperature and top_p from a seeded
generator. Text is produced by the incremental detokenizer and the per-choice text state of
`choicetext`, so that streamed and non-streamed output are made by the same code.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftui.server.choicetext import ChoiceText, Detokenizer, Token, token_start
from ftui.textsafe import first_surrogate

log = logging.getLogger("ftui.server.infer")

DEFAULT_CACHE_MODELS = 4
CACHE_MEMORY_FRACTION = 0.25  # of physical memory, for loaded models
KV_MEMORY_FRACTION = 0.25  # of physical memory, for one request's key/value cache
FALLBACK_CONTEXT = 2048
NUCLEUS_CANDIDATES = 1024  # top_p sorts these first (see _choose)
# Characters one tokenizer call gets while a long prompt is counted (see LoadedModel.encode):
# ~10 ms of work under the tokenizer lock, a few thousand tokens in memory.
ENCODE_WINDOW = 1 << 15


class RequestError(ValueError):
    """A request that cannot be served as asked (becomes a 400 naming ``param``)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class TooManyTokens(Exception):
    """A text was found to have more tokens than allowed before it was tokenized to its end."""

    def __init__(self, at_least: int) -> None:
        super().__init__(f"at least {at_least} tokens")
        self.at_least = at_least


def set_runtime_env() -> None:
    """OpenMP reads these when torch is first imported: PASSIVE stops idle worker threads from
    spinning, which made two threads several times slower on a shared machine (engine-notes;
    measured again here: a 49k-element sort took 50 ms instead of 3.5 ms)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def import_torch() -> Any:
    set_runtime_env()
    import torch

    return torch


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _env_mb(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return max(1, int(float(raw) * (1 << 20)))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of MB", name, raw)
        return None


# ---------------------------------------------------------------- loaded models


@dataclass
class LoadedModel:
    """A model ready for generation, with what the request checks need."""

    key: Hashable
    path: Path
    model: Any
    tokenizer: Any
    device: str
    context: int  # prompt + completion tokens the model can attend to
    vocab_size: int  # width of the logits
    tokenizer_size: int  # ids the tokenizer can decode
    eos_ids: frozenset[int]
    start_id: int | None  # conditions an empty prompt: BOS, else EOS
    appends_eos: bool  # the tokenizer adds EOS to encoded text (stripped from prompts)
    nbytes: int
    kv_bytes_per_token: int  # key/value cache bytes per token per row
    cache_arg: str  # the forward() keyword of the KV cache ("cache" in transformers 5.x)
    _texts: dict[int, str] = field(default_factory=dict, repr=False)
    # A fast tokenizer's __call__ may change its truncation/padding settings, and a change while
    # another thread encodes raises "Already borrowed". Every call under this lock gets a
    # bounded amount of text (see encode), so no request holds it for long.
    _encode_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def token_text(self, token_id: int) -> str:
        """One token as text; a token that is part of a UTF-8 sequence decodes to '\ufffd'."""
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self.decode([token_id])
        return text

    def encode(self, text: str, limit: int | None = None) -> list[int]:
        """The ids of a prompt. With ``limit``, a text longer than one window is first counted
        window by window and refused (TooManyTokens) as soon as it surely has more than
        ``limit`` tokens: a 20 MB prompt costs one window, not a full encode (a minute and
        gigabytes). Only a text that fits is encoded whole."""
        if limit is not None and len(text) > ENCODE_WINDOW:
            self._count_up_to(text, limit)
        with self._encode_lock:
            ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        if self.appends_eos and ids and ids[-1] in self.eos_ids:
            ids.pop()  # as in training: no EOS between the prompt and the completion
        return ids

    def _count_up_to(self, text: str, limit: int) -> None:
        """Raise TooManyTokens once the windows counted so far hold more than ``limit`` tokens.

        Windows end before a space where one is near, so that words (the tokenizer's pre-
        tokens) are rarely cut; a cut word can cost a token more than it would whole, so one
        token per cut is taken off the count to keep it a lower bound."""
        counted = cuts = 0
        start = 0
        while start < len(text):
            end = start + ENCODE_WINDOW
            if end < len(text):
                space = text.rfind(" ", start + ENCODE_WINDOW // 2, end)
                end = space if space > start else end
                cuts += 1
            with self._encode_lock:
                window = self.tokenizer(text[start:end], add_special_tokens=False)
            counted += len(window["input_ids"])
            del window
            if counted - cuts > limit:
                raise TooManyTokens(counted - cuts)
            start = end


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def _context(path: Path, model: Any, tokenizer: Any) -> int:
    from ftui.server.basemodels import context_length

    limits = [
        context_length(path),
        getattr(model.config, "max_position_embeddings", None),
        tokenizer.model_max_length,
    ]
    usable = [int(x) for x in limits if isinstance(x, int | float) and 0 < x < 1e9]
    return min(usable) if usable else FALLBACK_CONTEXT


def _kv_bytes_per_token(config: Any, element_size: int) -> int:
    text = getattr(config, "text_config", None) or config
    layers = getattr(text, "num_hidden_layers", None) or 1
    heads = getattr(text, "num_attention_heads", None) or 1
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    hidden = getattr(text, "hidden_size", None) or 0
    head_dim = getattr(text, "head_dim", None) or (hidden // heads if hidden else 64)
    return 2 * layers * kv_heads * head_dim * element_size


def pick_device(requested: str | None) -> str:
    torch = import_torch()
    if requested == "cuda" or (requested in (None, "auto") and torch.cuda.is_available()):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def load_model(
    path: str | os.PathLike[str], key: Hashable = None, device: str = "cpu"
) -> LoadedModel:
    """Load a Hugging Face causal LM directory in fp32 (reproducible results, engine-notes)."""
    torch = import_torch()
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.to(device).eval().requires_grad_(False)
    eos = _eos_ids(model, tokenizer)
    start = tokenizer.bos_token_id
    if start is None:
        start = min(eos) if eos else None
    probe_plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    probe = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    appends_eos = bool(probe) and probe[-1] in eos and probe[-1:] != probe_plain[-1:]
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in model.buffers())
    import inspect

    forward_args = inspect.signature(model.forward).parameters
    vocab = model.get_output_embeddings().weight.shape[0]
    return LoadedModel(
        key=key if key is not None else str(path),
        path=path,
        model=model,
        tokenizer=tokenizer,
        device=device,
        context=_context(path, model, tokenizer),
        vocab_size=int(vocab),
        tokenizer_size=len(tokenizer),
        eos_ids=eos,
        start_id=start,
        appends_eos=appends_eos,
        nbytes=nbytes,
        kv_bytes_per_token=_kv_bytes_per_token(model.config, 4),
        cache_arg="cache" if "cache" in forward_args else "past_key_values",
    )


def estimate_bytes(path: Path) -> int:
    """Memory a model directory needs once loaded in fp32, from its weight files."""
    total = 0
    for pattern in ("*.safetensors", "*.bin"):
        total += sum(f.stat().st_size for f in path.glob(pattern) if f.is_file())
    try:
        import json

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    except (OSError, ValueError):
        dtype = "float32"
    return total * (2 if dtype in ("bfloat16", "float16") else 1)


class ModelCache:
    """Loaded models, least recently used first out, bounded by memory and by count.

    A model evicted while a generation still uses it stays alive until that generation ends
    (the generation holds a reference). Two requests for a model that is not loaded yet load it
    once: the second waits for the first.
    """

    def __init__(
        self, max_bytes: int | None = None, max_models: int | None = None, device: str = "auto"
    ) -> None:
        self.max_bytes = (
            max_bytes
            or _env_mb("FTUI_MODEL_CACHE_MB")
            or int(physical_memory() * CACHE_MEMORY_FRACTION)
        )
        env_models = os.environ.get("FTUI_MODEL_CACHE_MODELS", "")
        self.max_models = (
            max_models or (int(env_models) if env_models.isdigit() else 0) or (DEFAULT_CACHE_MODELS)
        )
        self.requested_device = device
        self._device: str | None = None
        self._entries: OrderedDict[Hashable, LoadedModel] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device(self.requested_device)
        return self._device

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def get(self, key: Hashable, path: Path) -> LoadedModel:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    return entry
                freed = self._evict(incoming=estimate_bytes(path))
            if freed:
                gc.collect()
            try:
                entry = load_model(path, key, self.device)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._entries[key] = entry
                freed = self._evict(incoming=0, keep=key)
            if freed:
                gc.collect()
            return entry

    def discard(self, should_go: Callable[[Hashable], bool]) -> int:
        """Drop the entries whose key ``should_go`` (e.g. deleted fine-tuned models)."""
        with self._lock:
            gone = [k for k in self._entries if should_go(k)]
            for k in gone:
                del self._entries[k]
        if gone:
            gc.collect()
        return len(gone)

    def _evict(self, incoming: int, keep: Hashable = None) -> int:
        freed = 0

        def over() -> bool:
            count = len(self._entries) + (1 if incoming else 0)
            used = sum(e.nbytes for e in self._entries.values()) + incoming
            return count > self.max_models or used > self.max_bytes

        for key in list(self._entries):
            if not over():
                break
            if key == keep:
                continue
            log.info("unloading model %s to make room", key)
            del self._entries[key]
            freed += 1
        return freed


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
    if ids:
        return Prompt(ids)
    if entry.start_id is None:
        raise RequestError("'prompt' is empty and this model has no start token.", "prompt")
    return Prompt([entry.start_id], hidden=1)


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
    limit = _env_mb("FTUI_KV_LIMIT_MB") or int(physical_memory() * KV_MEMORY_FRACTION)
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


@dataclass
class Event:
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
    emit: Callable[[Event], None],
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
            emit(Event("echo", c, echo_text, [_copy(t) for t in prompt_tokens] if want_lp else []))
    if sampling.max_tokens == 0:
        for c in range(n):
            emit(Event("finish", c, finish_reason="length"))
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
        chosen = _choose(torch, scores, sampling, generator)
        chosen_lp = raw.gather(1, chosen[:, None]).squeeze(1).tolist()
        tops = None
        if want_lp and k:
            tv, ti = raw.topk(k, dim=-1)
            tops = (tv.tolist(), ti.tolist())
        chosen_ids = chosen.tolist()
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
                emit(Event("text", c, piece.text, tokens))
            if reason is None:
                keep.append(row)
            else:
                emit(Event("finish", c, "", [], reason, sampled[c], lp_sums[c]))
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


def mean_logprob(event: Event) -> float:
    """best_of ranks candidates by log probability per token."""
    return event.logprob_sum / event.completion_tokens if event.completion_tokens else -math.inf
