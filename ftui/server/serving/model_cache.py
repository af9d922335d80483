"""Loaded models for `/v1/completions`: a model ready for generation (``LoadedModel``) and the
least-recently-used cache of them (``ModelCache``), bounded by memory and by count.

Models are loaded by ``ftui.server.hf`` and prompts encoded by ``ftui.server.training.encode``, as
training does, so a fine-tuned model is served as it was trained. torch is imported inside
functions only.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftui.server import hf
from ftui.server.hf import Specials
from ftui.server.training.encode import prompt_ids, render_chat_prompt

log = logging.getLogger("ftui.server.serving.model_cache")

DEFAULT_CACHE_MODELS = 4
CACHE_MEMORY_FRACTION = 0.25  # of physical memory, for loaded models
# Characters one tokenizer call gets while a long prompt is counted (see LoadedModel.encode):
# ~10 ms of work under the tokenizer lock, a few thousand tokens in memory.
ENCODE_WINDOW = 1 << 15


class TooManyTokens(Exception):
    """A text was found to have more tokens than allowed before it was tokenized to its end."""

    def __init__(self, at_least: int) -> None:
        super().__init__(f"at least {at_least} tokens")
        self.at_least = at_least


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def env_mb(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return max(1, int(float(raw) * (1 << 20)))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of MB", name, raw)
        return None


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
    specials: Specials  # end-of-text ids, the start token, whether the tokenizer appends EOS
    nbytes: int
    kv_bytes_per_token: int  # key/value cache bytes per token per row
    cache_arg: str  # the forward() keyword of the KV cache ("cache" in transformers 5.x)
    _texts: dict[int, str] = field(default_factory=dict, repr=False)
    _bytes: dict[int, bytes | None] = field(default_factory=dict, repr=False)
    grammar_tokenizer: Any = field(default=None, repr=False)  # built by grammar.py when needed
    # A fast tokenizer's __call__ may change its truncation/padding settings, and a change while
    # another thread encodes raises "Already borrowed". Every call under this lock gets a
    # bounded amount of text (see encode), so no request holds it for long.
    _encode_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def eos_ids(self) -> frozenset[int]:
        return self.specials.eos_ids

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

    def token_bytes(self, token_id: int) -> bytes | None:
        """One token's own bytes (part of a character, for some); None for a special token."""
        if token_id in self._bytes:
            return self._bytes[token_id]
        added = self.tokenizer.added_tokens_decoder.get(token_id)
        if added is not None:
            raw = None if added.special else added.content.encode()
        else:
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            byte = _SP_BYTE.fullmatch(piece or "")
            if byte_level(self.tokenizer) and all(ch in _BYTE_OF for ch in piece):
                raw = bytes(_BYTE_OF[ch] for ch in piece)
            elif byte:  # SentencePiece's byte fallback
                raw = bytes([int(byte.group(1), 16)])
            else:
                raw = (piece or "").replace("\u2581", " ").encode()
        self._bytes[token_id] = raw
        return raw

    def encode(self, text: str, limit: int | None = None) -> list[int]:
        """The ids of a prompt, by the rule training uses (ftui.server.training.encode).

        With ``limit``, a text longer than one window is first counted window by window and
        refused (TooManyTokens) as soon as it surely has more than ``limit`` tokens: a 20 MB
        prompt costs one window, not a full encode (a minute and gigabytes). Only a text that
        fits is encoded whole."""
        if limit is not None and len(text) > ENCODE_WINDOW:
            self._count_up_to(text, limit)
        with self._encode_lock:
            return prompt_ids(self.tokenizer, self.specials, text)  # as training encodes it

    def encode_chat(
        self, messages: list[dict], tools: list[dict] | None, limit: int | None = None
    ) -> list[int]:
        """The ids of a chat prompt (``encode.render_chat_prompt``); with ``limit``, refused as
        ``encode`` refuses a long text: a huge conversation is counted window by window first
        (rendering alone is cheap; it is the tokenizing that costs)."""
        if limit is not None:
            size = sum(len(str(m.get("content") or "")) for m in messages)
            if size > ENCODE_WINDOW:
                text = "\n".join(str(m.get("content") or "") for m in messages)
                self._count_up_to(text, limit)
        with self._encode_lock:
            return render_chat_prompt(self.tokenizer, self.specials, messages, tools, limit)

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


def _byte_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's table), reversed."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    kept += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in kept:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_OF = _byte_alphabet()
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def byte_level(tokenizer: Any) -> bool:
    """Whether a tokenizer's pieces are byte-level BPE (GPT-2, SmolLM2, Qwen, Llama 3)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ == "ByteLevel" or "ByteLevel" in str(decoder)[:200]


def _kv_bytes_per_token(config: Any, element_size: int) -> int:
    text = getattr(config, "text_config", None) or config
    layers = getattr(text, "num_hidden_layers", None) or 1
    heads = getattr(text, "num_attention_heads", None) or 1
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    hidden = getattr(text, "hidden_size", None) or 0
    head_dim = getattr(text, "head_dim", None) or (hidden // heads if hidden else 64)
    return 2 * layers * kv_heads * head_dim * element_size


def load_model(
    path: str | os.PathLike[str], key: Hashable = None, device: str = "cpu"
) -> LoadedModel:
    """A model directory loaded for generation, as training loads it (ftui.server.hf)."""
    hf.configure()
    path = Path(path)
    loaded = hf.load(path, device)
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval().requires_grad_(False)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in model.buffers())
    forward_args = inspect.signature(model.forward).parameters
    vocab = model.get_output_embeddings().weight.shape[0]
    return LoadedModel(
        key=key if key is not None else str(path),
        path=path,
        model=model,
        tokenizer=tokenizer,
        device=device,
        context=loaded.context,
        vocab_size=int(vocab),
        tokenizer_size=len(tokenizer),
        specials=loaded.specials,
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
            or env_mb("FTUI_MODEL_CACHE_MB")
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
            self._device = hf.pick_device(self.requested_device)
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
