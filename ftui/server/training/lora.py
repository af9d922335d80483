"""LoRA via peft, imported only when a job uses LoRA (peft takes seconds to import).

Settings from docs/engine.md: r=8, α=16, dropout 0, every linear layer except the output head.
Saved models (final and checkpoints) carry merged weights W + (α/r)·B·A, computed without touching
the model being trained (merging in place and un-merging would not restore W bit for bit), so they
load with plain ``AutoModelForCausalLM`` and a resumed run continues from exactly the same state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RANK = 8
ALPHA = 16
DROPOUT = 0.0
BASE_LEARNING_RATE = 1e-2  # × learning_rate_multiplier (docs/engine.md: 0.1 → 1e-3)
# Full fine-tuning up to this many parameters, LoRA above (when the job leaves it to us).
AUTO_THRESHOLD = 200_000_000


def wrap(model: Any) -> Any:
    """The model with fresh LoRA adapters on its linear layers (initialised from torch's RNG)."""
    import warnings

    import peft

    config = peft.LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        lora_dropout=DROPOUT,
        target_modules="all-linear",  # peft leaves the output layer out
        bias="none",
    )
    with warnings.catch_warnings():  # peft 0.21 calls a deprecated transformers property
        warnings.simplefilter("ignore", FutureWarning)
        return peft.get_peft_model(model, config)


def _inner(peft_model: Any) -> Any:
    return peft_model.base_model.model


def adapter_state(peft_model: Any) -> dict[str, Any]:
    """The trainable adapter tensors (copies on the CPU), keyed by parameter name."""
    return {
        name: p.detach().to("cpu", copy=True)
        for name, p in peft_model.named_parameters()
        if p.requires_grad
    }


def load_adapter_state(peft_model: Any, state: dict[str, Any]) -> None:
    import torch

    params = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        raise ValueError(
            "The checkpoint's LoRA adapters do not match this model's "
            f"({len(state)} saved tensors, {len(params)} expected)."
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])


def merged_state_dict(peft_model: Any) -> dict[str, Any]:
    """The base model's state dict with every adapted weight replaced by W + scale·B·A."""
    import torch
    from peft.tuners.lora import LoraLayer

    inner = _inner(peft_model)
    layers = {name: m for name, m in inner.named_modules() if isinstance(m, LoraLayer)}
    merged: dict[str, Any] = {}
    with torch.no_grad():
        for key, value in inner.state_dict().items():
            if ".lora_" in key:
                continue
            if ".base_layer." in key:
                module = key.split(".base_layer.")[0]
                if key.endswith(".base_layer.weight"):
                    delta = layers[module].get_delta_weight("default")
                    value = value + delta.to(value.dtype)
                key = key.replace(".base_layer.", ".")
            merged[key] = value
    return merged


def save_merged(peft_model: Any, directory: Path) -> None:
    """Write a plain model directory (no adapter files) with merged weights."""
    _inner(peft_model).save_pretrained(directory, state_dict=merged_state_dict(peft_model))
