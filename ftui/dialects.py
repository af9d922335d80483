"""The rules of the two fine-tuning API dialects that both sides of ftui must agree on.

``legacy`` is ``/v1/fine-tunes``; ``current`` is ``/v1/fine_tuning/jobs``. The client plans
requests with these rules and the new-job form checks what is typed against them, so they hold
exactly what ``ftui serve`` enforces: a value the form accepts is one the server accepts.

Standard library only and nothing from ftui, so the client, the TUI and the server can all
import it without pulling in each other (the same footing as ``ftui.records``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["current", "legacy"]

LEGACY_PATH = "/fine-tunes"
CURRENT_PATH = "/fine_tuning/jobs"

# -- suffixes: what may be sent, and how it appears in the fine-tuned model's name ----------------
LEGACY_SUFFIX_MAX = 40
CURRENT_SUFFIX_MAX = 64

# Legacy names lower-case the suffix and turn every run of punctuation, whitespace or
# underscores into one dash; current names keep case and underscores.
_LEGACY_SUFFIX_JUNK = re.compile(r"[\W_]+")
_CURRENT_SUFFIX_JUNK = re.compile(r"[^A-Za-z0-9_-]+")


def suffix_max(dialect: Dialect) -> int:
    """The longest suffix (in characters, before normalising) the dialect accepts."""
    return LEGACY_SUFFIX_MAX if dialect == "legacy" else CURRENT_SUFFIX_MAX


def normalize_legacy_suffix(suffix: str) -> str:
    return _LEGACY_SUFFIX_JUNK.sub("-", suffix).strip("-").lower()


def normalize_current_suffix(suffix: str) -> str:
    return _CURRENT_SUFFIX_JUNK.sub("-", suffix).strip("-")


def normalize_suffix(suffix: str, dialect: Dialect) -> str:
    """The suffix as it will appear in the model's name."""
    if dialect == "legacy":
        return normalize_legacy_suffix(suffix)
    return normalize_current_suffix(suffix)


# -- options -------------------------------------------------------------------------------------
# The hyperparameters both dialects take; the legacy one also takes prompt_loss_weight.
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
# ftui extensions, accepted by both dialects (top level in legacy requests, inside
# ``hyperparameters`` in current ones): LoRA on/off, gradient clipping, micro-batches.
EXTENSION_OPTIONS = ("lora", "max_grad_norm", "micro_batch_size")

# Only the legacy endpoint takes these; a request that sets one must go to /v1/fine-tunes.
LEGACY_ONLY_OPTIONS = (
    "prompt_loss_weight",
    "compute_classification_metrics",
    "classification_n_classes",
    "classification_positive_class",
    "classification_betas",
)


@dataclass(frozen=True)
class Bound:
    """An inclusive range, except that ``low_open`` excludes ``lo`` itself."""

    lo: float
    hi: float
    low_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.lo if self.low_open else value >= self.lo
        return above and value <= self.hi

    def describe(self) -> str:
        low = f"above {self.lo:g}" if self.low_open else f"at least {self.lo:g}"
        return f"{low} and at most {self.hi:g}"


MAX_SEED = 2147483647
MAX_BATCH_SIZE = 256
LIMITS: dict[str, Bound] = {
    "n_epochs": Bound(1, 50),
    "batch_size": Bound(1, MAX_BATCH_SIZE),
    "learning_rate_multiplier": Bound(0.0, 100.0, low_open=True),
    "prompt_loss_weight": Bound(0.0, 1.0),
    "max_grad_norm": Bound(0.0, 1e6),  # 0 turns clipping off
    "micro_batch_size": Bound(1, MAX_BATCH_SIZE),
    "classification_n_classes": Bound(2, 10_000),
    "seed": Bound(0, MAX_SEED),
}
# current dialect only
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512
INTEGRATIONS_MAX = 5


# -- hyperparameter defaults: what a job left at null/"auto" trains with -------------------------
# The legacy API trains 4 epochs by default; the current API's "auto" is 3 here.
LEGACY_DEFAULT_N_EPOCHS = 4
CURRENT_AUTO_N_EPOCHS = 3
DEFAULT_PROMPT_LOSS_WEIGHT = 0.01
# Default batch size: this fraction of the training examples (legacy API), within 1..256.
BATCH_SIZE_FRACTION = 0.002
# Default learning_rate_multiplier by batch size: up to 4 → 0.05, up to 64 → 0.1, else 0.2.
LR_MULTIPLIER_BANDS = ((4, 0.05), (64, 0.1))
LR_MULTIPLIER_ABOVE = 0.2
# Gradients are clipped to this total norm unless max_grad_norm says otherwise (0 = off).
DEFAULT_MAX_GRAD_NORM = 1.0


def default_n_epochs(dialect: Dialect) -> int:
    return LEGACY_DEFAULT_N_EPOCHS if dialect == "legacy" else CURRENT_AUTO_N_EPOCHS


def default_batch_size(n_examples: int) -> int:
    # Rounded half up rather than to even.
    return max(1, min(MAX_BATCH_SIZE, math.floor(n_examples * BATCH_SIZE_FRACTION + 0.5)))


def default_lr_multiplier(batch_size: int) -> float:
    for up_to, multiplier in LR_MULTIPLIER_BANDS:
        if batch_size <= up_to:
            return multiplier
    return LR_MULTIPLIER_ABOVE


def is_fine_tuned(model: str) -> bool:
    """Whether a model id names a fine-tuned model (``ft:…`` current, ``…:ft-…`` legacy)."""
    return model.startswith("ft:") or ":ft-" in model
