"""The runner ↔ training-process contract: ``JOB_DIR/spec.json``, and how hyperparameters resolve.

The runner builds a :class:`JobSpec` from the job's record and writes it (atomically) before it
starts ``python -m ftui.server.training.train JOB_DIR``; the child reads it back with
:meth:`JobSpec.read`, and anything missing or of the wrong type fails the job with a
:class:`TrainError` naming the key. Hyperparameters travel as requested (null = default) and
are resolved in the child, which knows how many examples there are.

A leaf: it imports nothing from ftui but ``ftui.dialects`` (itself dependency-free), so the
runner, the training process and ``classification`` can all import it without a cycle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ftui import dialects
from ftui.dialects import Dialect

SPEC_FILE = "spec.json"
# Learning rate = learning_rate_multiplier × this, for full fine-tuning (LoRA has its own base,
# lora.BASE_LEARNING_RATE).
BASE_LEARNING_RATE = 3e-4


class TrainError(Exception):
    """A job failure whose message is meant for the user as is."""


def _positive(value: Any, name: str, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TrainError(f"Hyperparameter {name} must be a positive number; got {value!r}.")
    if kind is int and value != int(value):
        raise TrainError(f"Hyperparameter {name} must be a whole number; got {value!r}.")
    return kind(value)


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise TrainError(f"Hyperparameter {name} must be ≥ 0; got {value!r}.")
    return float(value)


# ---------------------------------------------------------------- hyperparameters


@dataclass(frozen=True)
class Hyperparameters:
    """What the job asked for; None means "the default" (the API's null or "auto")."""

    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    prompt_loss_weight: float | None = None
    max_grad_norm: float | None = None  # ftui extension; 0 turns clipping off
    micro_batch_size: int | None = None  # ftui extension; None = the whole batch at once

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Hyperparameters:
        """The hyperparameter entries of a job's request parameters (other entries ignored)."""
        return cls(**{f.name: params.get(f.name) for f in fields(cls)})

    def resolve(self, n_examples: int, dialect: Dialect = "legacy") -> Resolved:
        """Fill the defaults (ftui.dialects holds them) and check what was given."""
        n_epochs = (
            dialects.default_n_epochs(dialect)
            if self.n_epochs is None
            else _positive(self.n_epochs, "n_epochs", int)
        )
        batch_size = (
            dialects.default_batch_size(n_examples)
            if self.batch_size is None
            else _positive(self.batch_size, "batch_size", int)
        )
        lrm = (
            dialects.default_lr_multiplier(batch_size)
            if self.learning_rate_multiplier is None
            else _positive(self.learning_rate_multiplier, "learning_rate_multiplier", float)
        )
        plw = (
            dialects.DEFAULT_PROMPT_LOSS_WEIGHT
            if self.prompt_loss_weight is None
            else _non_negative(self.prompt_loss_weight, "prompt_loss_weight")
        )
        clip = (
            dialects.DEFAULT_MAX_GRAD_NORM
            if self.max_grad_norm is None
            else _non_negative(self.max_grad_norm, "max_grad_norm")
        )
        micro = (
            batch_size
            if self.micro_batch_size is None
            else min(batch_size, _positive(self.micro_batch_size, "micro_batch_size", int))
        )
        return Resolved(n_epochs, batch_size, lrm, plw, clip, micro)


@dataclass(frozen=True)
class Resolved:
    """The values training runs with; reported in the ``hyperparams`` progress row."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    prompt_loss_weight: float
    max_grad_norm: float
    micro_batch_size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_hyperparams(
    requested: Mapping[str, Any] | None, n_examples: int, dialect: Dialect = "legacy"
) -> Resolved:
    """``requested`` as a plain mapping (None/absent = default), resolved."""
    return Hyperparameters.from_params(requested or {}).resolve(n_examples, dialect)


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ClassificationOptions:
    """The legacy ``classification_*`` options; checked against the data by classification.py."""

    n_classes: int | None = None
    positive_class: str | None = None
    betas: list[float] | None = None


@dataclass
class JobSpec:
    training_file: str
    output_dir: Path
    data_dir: str
    job_id: str = ""
    dialect: Dialect = "legacy"
    base_model: str | None = None
    # Set when the base is a model on this server (a fine-tuned model or a checkpoint).
    base_model_path: Path | None = None
    validation_file: str | None = None
    hyperparams: Hyperparameters = field(default_factory=Hyperparameters)
    lora: bool | None = None  # None: LoRA above lora.AUTO_THRESHOLD parameters
    classification: ClassificationOptions | None = None
    validation_every: int | None = None  # None: about VALIDATION_POINTS times per job
    checkpoints_dir: Path | None = None  # None: JOB_DIR/checkpoints, at pauses only
    resume_from: Path | None = None  # a checkpoint directory with the trainer state
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    concurrent_jobs: int = 1

    # --- JSON, in the shape spec.json has always had

    def to_json(self) -> dict[str, Any]:
        def text(p: Path | None) -> str | None:
            return None if p is None else str(p)

        return {
            "job_id": self.job_id,
            "dialect": self.dialect,
            "base_model": self.base_model,
            "base_model_path": text(self.base_model_path),
            "data_dir": self.data_dir,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "hyperparams": asdict(self.hyperparams),
            "lora": self.lora,
            "classification": None if self.classification is None else asdict(self.classification),
            "validation_every": self.validation_every,
            "checkpoints": None
            if self.checkpoints_dir is None
            else {"dir": str(self.checkpoints_dir)},
            "resume_from": text(self.resume_from),
            "seed": self.seed,
            "output_dir": str(self.output_dir),
            "device": self.device,
            "threads": self.threads,
            "concurrent_jobs": self.concurrent_jobs,
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=2).encode()

    @classmethod
    def from_json(cls, data: Any, where: str = "The job spec") -> JobSpec:
        """Check every key; a TrainError names the first bad one."""
        if not isinstance(data, dict):
            raise TrainError(f"{where} is not a JSON object.")
        known = {f.name for f in fields(cls)} - {"checkpoints_dir"} | {"checkpoints"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainError(f"{where} has an unknown key '{unknown[0]}'.")
        read = _Reader(data, where)
        for key in ("training_file", "output_dir", "data_dir"):
            if not data.get(key):
                raise TrainError(f"{where} has no '{key}'.")
        dialect = read.text("dialect") or "legacy"
        if dialect not in ("legacy", "current"):
            raise TrainError(f"{where}'s 'dialect' must be 'legacy' or 'current'; got {dialect!r}.")
        checkpoints = data.get("checkpoints")
        if checkpoints is not None and (
            not isinstance(checkpoints, dict) or not isinstance(checkpoints.get("dir"), str)
        ):
            raise TrainError(f'{where}\'s \'checkpoints\' must be {{"dir": "/abs/path"}}.')
        return cls(
            training_file=read.text("training_file"),
            output_dir=Path(read.text("output_dir")),
            data_dir=read.text("data_dir"),
            job_id=read.text("job_id") or "",
            dialect=dialect,
            base_model=read.text("base_model"),
            base_model_path=read.path("base_model_path"),
            validation_file=read.text("validation_file"),
            hyperparams=read.hyperparams(),
            lora=read.flag("lora"),
            classification=read.classification(),
            validation_every=read.count("validation_every"),
            checkpoints_dir=None if checkpoints is None else Path(checkpoints["dir"]),
            resume_from=read.path("resume_from"),
            seed=read.whole("seed") or 0,
            device=read.text("device") or "auto",
            threads=read.count("threads"),
            concurrent_jobs=read.count("concurrent_jobs") or 1,
        )

    @classmethod
    def read(cls, job_dir: Path) -> JobSpec:
        path = Path(job_dir) / SPEC_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise TrainError(f"Cannot read the job spec {path}: {e.strerror or e}.") from e
        except ValueError as e:
            raise TrainError(f"The job spec {path} is not valid JSON: {e}.") from e
        return cls.from_json(data, f"The job spec {path}")

    def thread_count(self) -> int:
        """``threads`` if given, else the cores shared out between concurrent jobs."""
        if self.threads:
            return max(1, self.threads)
        return max(1, (os.cpu_count() or 1) // max(1, self.concurrent_jobs))


class _Reader:
    """Typed reads of one spec's keys; each failure names the key."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def _bad(self, key: str, wanted: str) -> TrainError:
        return TrainError(f"{self.where}'s '{key}' must be {wanted}; got {self.data[key]!r}.")

    def text(self, key: str) -> Any:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        return Path(value) if value else None

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self._bad(key, "true, false or null")
        return value

    def whole(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._bad(key, "a whole number or null")
        return value

    def count(self, key: str) -> int | None:
        value = self.whole(key)
        if value is not None and value < 1:
            raise self._bad(key, "a positive whole number or null")
        return value

    def hyperparams(self) -> Hyperparameters:
        raw = self.data.get("hyperparams") or {}
        if not isinstance(raw, dict):
            raise self._bad("hyperparams", "an object")
        allowed = {f.name for f in fields(Hyperparameters)}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise TrainError(f"{self.where}'s 'hyperparams' has an unknown key '{unknown[0]}'.")
        # Values are checked when resolved, with the API's names in the message.
        return Hyperparameters(**raw)

    def classification(self) -> ClassificationOptions | None:
        raw = self.data.get("classification")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise TrainError("The job spec's 'classification' must be an object or null.")
        n_classes = raw.get("n_classes")
        if n_classes is not None:
            _positive(n_classes, "classification_n_classes", int)
        positive = raw.get("positive_class")
        if positive is not None and not isinstance(positive, str):
            raise TrainError(f"classification_positive_class must be a string; got {positive!r}.")
        betas = raw.get("betas")
        if betas is not None and (
            not isinstance(betas, list)
            or not betas
            or any(isinstance(b, bool) or not isinstance(b, int | float) for b in betas)
        ):
            raise TrainError(f"classification_betas must be a list of numbers; got {betas!r}.")
        return ClassificationOptions(n_classes, positive, betas)
