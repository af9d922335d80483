"""The rows of ``progress.jsonl``: one typed protocol for the training process and the runner.

The child writes these objects with :class:`ProgressWriter`; the runner reads them back with
:func:`read` and dispatches on their type. On the wire each row is one flat JSON object with a
``type`` key, in the order the child writes them:

``hyperparams`` (resolved values, ``n_examples``, ``total_steps``, ``lora``), ``started`` (the
pause handler is installed), ``resumed`` (``from_step``; only when resuming), per step a ``step``
row (legacy metric names, ``learning_rate``, ``grad_norm``, ``validation_*`` on validation steps,
``classification/*`` at epoch ends), ``epoch`` after each epoch's last step, ``checkpoint`` after
a checkpoint is complete on disk (its ``metrics`` under current-API names), and at the end
``model_saved``, ``paused`` or ``failed``.

A separate module from ``progresslog`` (whole lines on disk, torn tails) and ``jobprogress`` (the
runner applying rows to the store): the child must import this one without the store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ftui.server.training import progresslog

log = logging.getLogger("ftui.server.training.progress")

CLASSIFICATION_PREFIX = "classification/"


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Row:
    TYPE: ClassVar[str] = ""

    def encode(self) -> dict[str, Any]:
        return {"type": self.TYPE, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def decode(cls, message: dict[str, Any]) -> Row:
        values = {}
        for f in fields(cls):
            if f.name in message:
                values[f.name] = message[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                raise KeyError(f.name)
        return cls(**values)


@dataclass(frozen=True)
class Hyperparams(Row):
    TYPE: ClassVar[str] = "hyperparams"
    values: dict[str, Any]  # jobspec.Resolved.as_dict(): flat on the wire
    n_examples: int
    total_steps: int
    lora: bool

    def encode(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            **self.values,
            "n_examples": self.n_examples,
            "total_steps": self.total_steps,
            "lora": self.lora,
        }

    @classmethod
    def decode(cls, message: dict[str, Any]) -> Hyperparams:
        rest = {"type", "n_examples", "total_steps", "lora"}
        values = {k: v for k, v in message.items() if k not in rest}
        return cls(values, message["n_examples"], message["total_steps"], message["lora"])


@dataclass(frozen=True)
class Started(Row):
    TYPE: ClassVar[str] = "started"
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Resumed(Row):
    TYPE: ClassVar[str] = "resumed"
    from_step: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Metrics:
    """Loss and accuracies over some targets (a batch, a validation batch, a whole set)."""

    loss: float
    sequence_accuracy: float
    token_accuracy: float


@dataclass(frozen=True)
class Step(Row):
    """One optimizer step. On the wire: legacy results-file names (``training_loss``, …)."""

    TYPE: ClassVar[str] = "step"
    step: int
    epoch: int
    total_steps: int
    elapsed_tokens: int
    elapsed_examples: int
    training: Metrics
    learning_rate: float
    tokens: int  # this step's tokens, padding excluded
    grad_norm: float | None = None  # total gradient norm before clipping
    validation: Metrics | None = None
    classification: dict[str, float | None] = field(default_factory=dict)  # "classification/…"
    time: float = field(default_factory=_now)

    def values(self) -> dict[str, Any]:
        """The flat row without ``type`` and ``time``: a line of the results file."""
        out: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch,
            "total_steps": self.total_steps,
            "elapsed_tokens": self.elapsed_tokens,
            "elapsed_examples": self.elapsed_examples,
            "training_loss": self.training.loss,
            "training_sequence_accuracy": self.training.sequence_accuracy,
            "training_token_accuracy": self.training.token_accuracy,
            "learning_rate": self.learning_rate,
            "tokens": self.tokens,
            "grad_norm": self.grad_norm,
        }
        if self.validation is not None:
            out["validation_loss"] = self.validation.loss
            out["validation_sequence_accuracy"] = self.validation.sequence_accuracy
            out["validation_token_accuracy"] = self.validation.token_accuracy
        out.update(self.classification)
        return out

    def encode(self) -> dict[str, Any]:
        return {"type": self.TYPE, **self.values(), "time": self.time}

    @classmethod
    def decode(cls, message: dict[str, Any]) -> Step:
        def metrics(prefix: str) -> Metrics | None:
            if message.get(f"{prefix}_loss") is None and prefix == "validation":
                return None
            return Metrics(
                message.get(f"{prefix}_loss"),  # type: ignore[arg-type]
                message.get(f"{prefix}_sequence_accuracy"),  # type: ignore[arg-type]
                message.get(f"{prefix}_token_accuracy"),  # type: ignore[arg-type]
            )

        return cls(
            step=message["step"],
            epoch=message.get("epoch", 0),
            total_steps=message.get("total_steps", 0),
            elapsed_tokens=message.get("elapsed_tokens", 0),
            elapsed_examples=message.get("elapsed_examples", 0),
            training=metrics("training"),  # type: ignore[arg-type]
            learning_rate=message.get("learning_rate", 0.0),
            tokens=message.get("tokens", 0),
            grad_norm=message.get("grad_norm"),
            validation=metrics("validation"),
            classification={
                k: v for k, v in message.items() if k.startswith(CLASSIFICATION_PREFIX)
            },
            time=message.get("time", 0.0),
        )


@dataclass(frozen=True)
class Epoch(Row):
    TYPE: ClassVar[str] = "epoch"
    epoch: int
    n_epochs: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Checkpoint(Row):
    TYPE: ClassVar[str] = "checkpoint"
    step: int
    epoch: int
    path: str
    metrics: dict[str, Any]  # current-API names, as the checkpoints endpoint shows them
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class ModelSaved(Row):
    TYPE: ClassVar[str] = "model_saved"
    path: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Paused(Row):
    TYPE: ClassVar[str] = "paused"
    step: int
    path: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Failed(Row):
    """``code``: ``storage_full``, ``storage_read_only`` or ``training_failed``."""

    TYPE: ClassVar[str] = "failed"
    message: str
    code: str = "training_failed"


ROW_TYPES: dict[str, type[Row]] = {
    cls.TYPE: cls
    for cls in (Hyperparams, Started, Resumed, Step, Epoch, Checkpoint, ModelSaved, Paused, Failed)
}


def decode(message: dict[str, Any], where: str = "progress") -> Row | None:
    """The row a parsed line holds, or None (with a warning) if it is not one we know."""
    cls = ROW_TYPES.get(message.get("type"))  # type: ignore[arg-type]
    if cls is None:
        log.warning("%s: skipped a row of unknown type %.80r", where, message.get("type"))
        return None
    try:
        return cls.decode(message)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: skipped a %s row without %s", where, cls.TYPE, exc)
        return None


def read(path: Path, offset: int) -> list[tuple[int, Row | None]]:
    """The complete rows after ``offset``: (offset after the line, row or None)."""
    return [
        (end, None if message is None else decode(message, str(path)))
        for end, message in progresslog.read_complete(path, offset)
    ]


class ProgressWriter:
    """The training process's end of ``progress.jsonl``."""

    def __init__(self, path: Path) -> None:
        self._log = progresslog.Progress(path)

    def write(self, row: Row) -> None:
        self._log.append(row.encode())

    def close(self) -> None:
        self._log.close()
