"""The one Hugging Face runtime of training and serving: process settings, device, precision,
loading a model directory, its end-of-text ids and its context length.

Training (``ftui.server.training.train``) and serving (``ftui.server.serving.infer``) both load
models through this module, so a fine-tuned model is served with the device, weights, end-of-text
ids and context it was trained with. The rules:

- **Process settings** (:func:`set_runtime_env`, :data:`RUNTIME_ENV`): ``OMP_WAIT_POLICY=PASSIVE``
  and ``TOKENIZERS_PARALLELISM=false`` before torch is first imported. OpenMP reads them at
  start-up; PASSIVE stops idle worker threads from spinning, which made two threads 2.5–4× slower
  than one on a shared machine (a 49k-element sort took 50 ms instead of 3.5 ms).
- **Device** (:func:`pick_device`): ``auto`` (or nothing) is ``cuda`` when PyTorch sees a CUDA GPU,
  else ``cpu``; ``cpu`` is the CPU; ``cuda`` without a CUDA GPU is an error
  (:class:`DeviceUnavailable`), in training and serving alike, never a silent fall-back.
- **Precision**: weights are loaded in fp32 everywhere (bf16 weights are not bit-identical: class
  log-probabilities moved by up to 0.24 and greedy texts diverged, so fp32 keeps losses, metrics
  and echoed log-probabilities reproducible). Training computes in bf16 autocast on a GPU that
  supports bf16 (:func:`autocast_dtype`); serving computes in fp32.
- **End of text** (:class:`Specials`): generation stops at any id that the generation config, the
  model config or the tokenizer names as end-of-sequence; training appends one of them to every
  completion (the tokenizer's, else the model's first), so what training teaches is always a
  stop for serving.
- **Context** (:func:`context_length`): the smallest of config.json's stated window
  (``max_position_embeddings`` and its aliases), the loaded config's ``max_position_embeddings``
  and the tokenizer's ``model_max_length`` (values of 1e9 and more mean "unset"), else 2048.
  Training truncates examples to it and serving refuses prompts that do not fit it.

torch and transformers are imported inside functions only: the server imports this module at
start-up without them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNTIME_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
DEVICES = ("auto", "cpu", "cuda")
FALLBACK_CONTEXT = 2048
_UNSET = 1e9  # tokenizers that do not know their limit say 1e30


class DeviceUnavailable(RuntimeError):
    """The device asked for cannot be used here (the message says why)."""


def child_env(environ: Mapping[str, str], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment of a training process: ``environ`` less ``drop`` (secrets), with
    :data:`RUNTIME_ENV` (the child imports torch first thing)."""
    return {**{k: v for k, v in environ.items() if k not in drop}, **RUNTIME_ENV}


def set_runtime_env() -> None:
    """Set :data:`RUNTIME_ENV` in this process (values already set win). Call before torch is
    imported; child processes get the same values from their parent's environment."""
    for name, value in RUNTIME_ENV.items():
        os.environ.setdefault(name, value)


def import_torch() -> Any:
    set_runtime_env()
    import torch

    return torch


def configure(threads: int | None = None) -> None:
    """Process-wide settings for a process that runs models: the environment, torch's thread
    count (when given) and no download progress bars on stderr."""
    torch = import_torch()
    import transformers

    if threads:
        torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()


def pick_device(requested: str | None) -> str:
    """``"cpu"`` or ``"cuda"`` for a requested ``auto``/``cpu``/``cuda`` (None means auto)."""
    requested = requested or "auto"
    if requested not in DEVICES:
        raise DeviceUnavailable(f"Unknown device {requested!r}; expected auto, cpu or cuda.")
    if requested == "cpu":
        return "cpu"
    torch = import_torch()
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise DeviceUnavailable("Device 'cuda' was asked for, but PyTorch sees no CUDA GPU here.")
    return "cpu"


def autocast_dtype(device: str) -> Any:
    """The reduced precision training computes in on ``device`` (bf16 on a GPU that supports
    it), or None for fp32."""
    if device != "cuda":
        return None
    torch = import_torch()
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


@dataclass(frozen=True)
class Specials:
    """The special ids that decide where a text starts and ends, for one model."""

    eos_ids: frozenset[int]  # any of them ends a generation
    eos_id: int | None  # the one training appends to completions (a member of eos_ids)
    start_id: int | None  # what an empty prompt is conditioned on: BOS, else the lowest EOS
    appends_eos: bool  # the tokenizer itself adds an EOS to encoded text


def specials(tokenizer: Any, model_config: Any = None, generation_config: Any = None) -> Specials:
    ids: set[int] = set()
    first: int | None = None
    for source in (generation_config, model_config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        values = [value] if isinstance(value, int) else list(value or [])
        values = [v for v in values if isinstance(v, int)]
        ids.update(values)
        first = first if first is not None else (values[0] if values else None)
    if tokenizer.eos_token_id is not None:
        first = int(tokenizer.eos_token_id)
        ids.add(first)
    start = tokenizer.bos_token_id
    if start is None:
        start = min(ids) if ids else None
    probe_plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    probe = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    appends_eos = bool(probe) and probe[-1] in ids and probe[-1:] != probe_plain[-1:]
    return Specials(frozenset(ids), first, start, appends_eos)


def context_length(path: str | os.PathLike[str], model_config: Any, tokenizer: Any) -> int:
    from ftui.datadir import context_length as stated

    limits = [
        stated(path),
        getattr(model_config, "max_position_embeddings", None),
        tokenizer.model_max_length,
    ]
    usable = [int(x) for x in limits if isinstance(x, int | float) and 0 < x < _UNSET]
    return min(usable) if usable else FALLBACK_CONTEXT


@dataclass
class Loaded:
    model: Any
    tokenizer: Any  # its model_max_length is the context, so a saved copy states the real limit
    context: int
    specials: Specials


def load(path: str | os.PathLike[str], device: str) -> Loaded:
    """A causal LM directory (a base model, the converted bundled model, a fine-tuned model or
    a checkpoint) in fp32 on ``device``, ready to train (serving sets eval mode itself)."""
    torch = import_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    context = context_length(path, model.config, tokenizer)
    tokenizer.model_max_length = context
    found = specials(tokenizer, model.config, getattr(model, "generation_config", None))
    return Loaded(model, tokenizer, context, found)
