"""The training child process: ``python -m ftui.server.train JOB_DIR``.

Reads ``JOB_DIR/spec.json``, fine-tunes a Hugging Face causal LM (fully, or with LoRA adapters
whose merged weights are saved) on prompt/completion or chat examples, appends one JSON object per
line to ``JOB_DIR/progress.jsonl`` and writes the model to ``spec["output_dir"]`` atomically.

Progress rows, in order: ``hyperparams`` (resolved values, ``n_examples``, ``total_steps``,
``lora``), ``started``, ``resumed`` (``from_step``; only when resuming), then per step a ``step``
row (legacy metrics, ``learning_rate``, ``validation_*`` on validation steps,
``classification/*`` at epoch ends), ``epoch`` after each epoch's last step, ``checkpoint``
after each checkpoint is complete on disk, and at the end ``model_saved``, ``paused`` or
``failed`` (``message``, and ``code``: ``storage_full``, ``storage_read_only`` or
``training_failed``). Exit status 0 after ``model_saved`` or ``paused``; 1 after ``failed``.

Optional spec keys: ``classification``, ``validation_every``, ``checkpoints`` ({"dir"}),
``resume_from`` (a checkpoint directory), ``lora`` (true/false/null = by model size),
``threads`` / ``concurrent_jobs``. SIGUSR1 pauses: the current step finishes, a checkpoint is
written and the process exits 0 with a ``paused`` row (a pause that arrives during the last step
is ignored: the job completes). SIGTERM keeps its default action.

torch and transformers are imported inside functions: the server imports this module's siblings
at start-up, and tests call the pure-Python parts (hyperparameters, batching) without them; peft
only when LoRA is used.

Loss (legacy semantics, engine-notes): per target position, weight 1 for completion targets,
``prompt_loss_weight`` for prompt targets, 0 for padding; loss = Σ w·ce / Σ w over the whole
batch, so a padded batch of one gives exactly that example's loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftui import records
from ftui.server import encode, hf, progresslog
from ftui.server.diskio import StorageProblem, storage_problem
from ftui.server.encode import Encoded

if TYPE_CHECKING:
    import torch

BASE_LEARNING_RATE = 3e-4  # × learning_rate_multiplier; full fine-tuning (engine-notes)
DEFAULT_N_EPOCHS = 4
DEFAULT_PROMPT_LOSS_WEIGHT = 0.01
MAX_BATCH_SIZE = 256
# Length-aware batching sorts windows of this many batches by length: big enough to cut padding,
# small enough that the order stays well shuffled.
LENGTH_WINDOW_BATCHES = 50
# Validation runs on one validation batch about this many times per job (and on the last step).
VALIDATION_POINTS = 25
UNEXPECTED = "Training failed unexpectedly"


class TrainError(Exception):
    """A failure whose message is meant for the user as is."""


# ---------------------------------------------------------------- progress


# One writer of progress.jsonl for the whole project: whole lines, nothing half-written.
Progress = progresslog.Progress


# ---------------------------------------------------------------- spec and data


def read_spec(job_dir: Path) -> dict[str, Any]:
    path = job_dir / "spec.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TrainError(f"Cannot read the job spec {path}: {e.strerror or e}.") from e
    except ValueError as e:
        raise TrainError(f"The job spec {path} is not valid JSON: {e}.") from e
    for key in ("training_file", "output_dir", "data_dir"):
        if not spec.get(key):
            raise TrainError(f"The job spec {path} has no '{key}'.")
    return spec


def load_examples(path: str | os.PathLike[str], what: str = "training file") -> list[dict]:
    """The examples of a JSONL file, checked by ftui.records as the upload check does (one
    definition of a valid example); errors name the file and line."""
    try:
        with open(path, "rb") as f:
            examples = [obj for _, obj in records.iter_examples(f)]
    except OSError as e:
        raise TrainError(f"Cannot read the {what} {path}: {e.strerror or e}.") from e
    except records.RecordError as e:
        raise TrainError(f"The {what} {path}, line {e.line} {e.message}.") from e
    if not examples:
        raise TrainError(f"The {what} {path} has no examples.")
    return examples


# ---------------------------------------------------------------- hyperparameters and batches


def default_batch_size(n_examples: int) -> int:
    # ~0.2% of the examples (legacy API), rounded half up rather than to even.
    return max(1, min(MAX_BATCH_SIZE, math.floor(n_examples * 0.002 + 0.5)))


def default_lr_multiplier(batch_size: int) -> float:
    return 0.05 if batch_size <= 4 else 0.1 if batch_size <= 64 else 0.2


def _positive(value: Any, name: str, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TrainError(f"Hyperparameter {name} must be a positive number; got {value!r}.")
    if kind is int and value != int(value):
        raise TrainError(f"Hyperparameter {name} must be a whole number; got {value!r}.")
    return kind(value)


def resolve_hyperparams(hyperparams: dict[str, Any], n_examples: int) -> dict[str, Any]:
    """Fill null hyperparameters with the legacy API's defaults."""
    hp = hyperparams or {}
    n_epochs = hp.get("n_epochs")
    n_epochs = DEFAULT_N_EPOCHS if n_epochs is None else _positive(n_epochs, "n_epochs", int)
    batch_size = hp.get("batch_size")
    batch_size = (
        default_batch_size(n_examples)
        if batch_size is None
        else _positive(batch_size, "batch_size", int)
    )
    lrm = hp.get("learning_rate_multiplier")
    lrm = (
        default_lr_multiplier(batch_size)
        if lrm is None
        else _positive(lrm, "learning_rate_multiplier", float)
    )
    plw = hp.get("prompt_loss_weight")
    if plw is None:
        plw = DEFAULT_PROMPT_LOSS_WEIGHT
    elif isinstance(plw, bool) or not isinstance(plw, int | float) or plw < 0:
        raise TrainError(f"Hyperparameter prompt_loss_weight must be ≥ 0; got {plw!r}.")
    return {
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": lrm,
        "prompt_loss_weight": float(plw),
    }


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return math.ceil(n_examples / batch_size)


def build_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, in a seeded random order.

    Shuffle, sort windows of LENGTH_WINDOW_BATCHES batches by length, cut them into batches,
    shuffle the batches. Every window but the last is a multiple of batch_size, so there are
    ceil(n / batch_size) batches and at most one is short.
    """
    # String seeds hash with SHA-512: stable across processes, unlike hash() of a tuple.
    rng = random.Random(f"ftui:{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * LENGTH_WINDOW_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


# ---------------------------------------------------------------- tokenization


def eos_token_id(specials: hf.Specials) -> int:
    if specials.eos_id is None:
        raise TrainError("The base model's tokenizer has no end-of-sequence token to train with.")
    return specials.eos_id


def encode_example(tokenizer: Any, specials: hf.Specials, example: dict, max_len: int) -> Encoded:
    try:
        return encode.encode_example(tokenizer, specials, example, max_len)
    except encode.EncodeError as e:
        raise TrainError(str(e)) from e


# ---------------------------------------------------------------- tensors, loss, metrics


def collate(
    batch: list[Encoded], pad_id: int, prompt_loss_weight: float, device: Any = "cpu"
) -> dict[str, torch.Tensor]:
    """Right-padded tensors. Targets are shifted (position j predicts token j+1); weights and
    masks come from the lengths, never from ``ids == pad_id`` (pad is often EOS)."""
    import torch

    width = max(len(e.ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    target_weights = torch.zeros((len(batch), max(width - 1, 0)), dtype=torch.float32)
    completion_targets = torch.zeros((len(batch), max(width - 1, 0)), dtype=torch.bool)
    for row, e in enumerate(batch):
        n = len(e.ids)
        input_ids[row, :n] = torch.tensor(e.ids, dtype=torch.long)
        attention_mask[row, :n] = 1
        is_completion = torch.tensor(e.completion[1:], dtype=torch.bool)
        completion_targets[row, : n - 1] = is_completion
        target_weights[row, : n - 1] = torch.where(is_completion, 1.0, prompt_loss_weight)
    tensors = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "target_weights": target_weights,
        "completion_targets": completion_targets,
    }
    return {k: v.to(device) for k, v in tensors.items()}


def _loss_and_counts(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    target_weights: torch.Tensor,
    completion_targets: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The differentiable loss, and the sums that the metrics are ratios of (so several batches
    can be pooled): Σ w·ce, Σ w, right / all completion targets, right / all rows."""
    import torch
    import torch.nn.functional as F

    # Cross-entropy on the (rows × positions, vocabulary) view of the logits, as they come out
    # of the model: slicing off the last position would copy the largest tensor of the step, and
    # a (batch, vocabulary, positions) layout ran 2× slower on CPU. The last position predicts
    # nothing: it gets a dummy target and weight 0.
    vocab = logits.shape[-1]
    logits = logits.float()
    targets = torch.cat([input_ids[:, 1:], input_ids[:, :1]], dim=1)
    weights = F.pad(target_weights, (0, 1))
    ce = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), reduction="none")
    weighted = (ce * weights.reshape(-1)).sum()
    weight = target_weights.sum()
    loss = weighted / weight.clamp_min(1e-12)
    with torch.no_grad():
        correct = logits.argmax(-1)[:, :-1] == input_ids[:, 1:]
        rows = completion_targets.any(dim=1)
        rows_right = (correct | ~completion_targets).all(dim=1) & rows
        counts = torch.stack(
            [
                weighted.detach(),
                weight,
                (correct & completion_targets).sum().float(),
                completion_targets.sum().float(),
                rows_right.sum().float(),
                rows.sum().float(),
            ]
        ).tolist()
    return loss, dict(
        zip(
            ("weighted", "weight", "tokens_right", "tokens", "rows_right", "rows"),
            counts,
            strict=True,
        )
    )


def _ratios(c: dict[str, float]) -> dict[str, float]:
    return {
        "loss": c["weighted"] / max(c["weight"], 1e-12),
        "sequence_accuracy": c["rows_right"] / max(c["rows"], 1),
        "token_accuracy": c["tokens_right"] / max(c["tokens"], 1),
    }


def weighted_loss_and_metrics(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    target_weights: torch.Tensor,
    completion_targets: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss Σ w·ce / Σ w over all target positions of the batch (differentiable), and metrics:
    token accuracy over completion targets, sequence accuracy = every completion target right."""
    loss, counts = _loss_and_counts(logits, input_ids, target_weights, completion_targets)
    return loss, {**_ratios(counts), "loss": loss.item()}


# ---------------------------------------------------------------- model and devices


def pick_device(requested: str | None) -> str:
    try:
        return hf.pick_device(requested)
    except hf.DeviceUnavailable as e:
        raise TrainError(f"The job cannot run: {e}") from e


def load_base(path: Path, device: str) -> tuple[Any, Any, hf.Specials]:
    """Model, tokenizer (stating the context as its model_max_length) and special ids."""
    loaded = hf.load(path, device)
    return loaded.model, loaded.tokenizer, loaded.specials


def count_parameters(model_dir: Path) -> int:
    """Parameters of the model in ``model_dir`` without loading it: from the safetensors headers
    (tied weights are stored once, as ``num_parameters()`` counts them), else estimated from the
    size of the weight files at 2 bytes per parameter."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if files:
        total = 0
        for f in files:
            with open(f, "rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size))
            for name, info in header.items():
                if name != "__metadata__":
                    total += math.prod(info["shape"])
        return total
    weights = [f for ext in ("*.bin", "*.pt", "*.pth") for f in Path(model_dir).glob(ext)]
    return sum(f.stat().st_size for f in weights) // 2


def use_lora(option: Any, n_parameters: int) -> bool:
    """``lora`` from the spec: true/false as given; null/absent: LoRA above the size threshold."""
    from ftui.server.lora import AUTO_THRESHOLD

    if option is None:
        return n_parameters > AUTO_THRESHOLD
    if not isinstance(option, bool):
        raise TrainError(f"The job spec's 'lora' must be true, false or null; got {option!r}.")
    return option


def make_optimizer(model: Any, lr: float, total_steps: int) -> tuple[Any, Any]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    try:  # fused: optimizer step 0.75 s → 0.16 s on CPU (engine-notes)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    # Linear decay from lr (first step) towards 0 (after the last step); no warm-up.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / total_steps)
    )
    return optimizer, scheduler


def write_model(model: Any, tokenizer: Any, directory: Path) -> None:
    """A plain Hugging Face model directory; a LoRA (peft) model is written with merged weights."""
    if hasattr(model, "peft_config"):
        from ftui.server import lora

        lora.save_merged(model, directory)
    else:
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def save_model(model: Any, tokenizer: Any, output_dir: Path) -> None:
    """Write to ``output_dir.partial`` and rename, so output_dir is absent or complete."""
    from ftui.server.checkpoints import write_dir_atomically

    write_dir_atomically(Path(output_dir), lambda tmp: write_model(model, tokenizer, tmp))


# ---------------------------------------------------------------- the job's options


@dataclass
class Options:
    """The optional parts of the spec, checked."""

    classification: dict[str, Any] | None = None
    validation_every: int | None = None
    checkpoints_dir: Path | None = None
    resume_from: Path | None = None
    lora: bool | None = None


def read_options(spec: dict[str, Any]) -> Options:
    options = Options(lora=spec.get("lora"))
    classification = spec.get("classification")
    if classification is not None:
        if not isinstance(classification, dict):
            raise TrainError("The job spec's 'classification' must be an object or null.")
        n_classes = classification.get("n_classes")
        if n_classes is not None:
            _positive(n_classes, "classification_n_classes", int)
        positive = classification.get("positive_class")
        if positive is not None and not isinstance(positive, str):
            raise TrainError(f"classification_positive_class must be a string; got {positive!r}.")
        betas = classification.get("betas")
        if betas is not None and (
            not isinstance(betas, list)
            or not betas
            or any(isinstance(b, bool) or not isinstance(b, int | float) for b in betas)
        ):
            raise TrainError(f"classification_betas must be a list of numbers; got {betas!r}.")
        options.classification = classification
    every = spec.get("validation_every")
    if every is not None:
        options.validation_every = _positive(every, "validation_every", int)
    checkpoints = spec.get("checkpoints")
    if checkpoints is not None:
        if not isinstance(checkpoints, dict) or not checkpoints.get("dir"):
            raise TrainError('The job spec\'s \'checkpoints\' must be {"dir": "/abs/path"}.')
        options.checkpoints_dir = Path(checkpoints["dir"])
    if spec.get("resume_from"):
        options.resume_from = Path(spec["resume_from"])
    return options


# ---------------------------------------------------------------- the job


def _set_worker_env() -> None:
    # Before torch is first imported (the bundled-model conversion in _resolve_base imports it
    # too): OpenMP reads these at start-up.
    hf.set_runtime_env()


def thread_count(spec: dict[str, Any]) -> int:
    """``threads`` from the spec, else the cores shared out between concurrent jobs."""
    if spec.get("threads"):
        return max(1, int(spec["threads"]))
    concurrent = max(1, int(spec.get("concurrent_jobs") or 1))
    return max(1, (os.cpu_count() or 1) // concurrent)


def _setup_runtime(threads: int) -> None:
    hf.configure(threads)


def _resolve_base(spec: dict[str, Any]) -> Path:
    if spec.get("base_model_path"):
        path = Path(spec["base_model_path"])
        if not (path / "config.json").is_file():
            raise TrainError(
                f"The model to continue training from ({spec.get('base_model')}) is missing "
                f"its files at {path}; it may have been deleted."
            )
        return path
    from ftui.server import basemodels

    return basemodels.resolve(spec.get("base_model"), spec["data_dir"])


# Set by SIGUSR1: finish the current step, write a checkpoint, exit 0 ("paused").
_pause_requested = False


def _request_pause(signum: int, frame: Any) -> None:
    global _pause_requested
    _pause_requested = True


@dataclass
class Position:
    """Where training stands: ``done`` of ``order`` (this epoch's batches) are trained."""

    step: int = 0
    epoch: int = 1
    done: int = 0
    order: list[list[int]] | None = None
    tokens: int = 0
    examples: int = 0


class Trainer:
    """State of one run; ``fit`` emits the step, epoch and checkpoint rows."""

    def __init__(
        self,
        spec: dict[str, Any],
        hp: dict[str, Any],
        progress: Progress,
        options: Options,
        job_dir: Path,
    ) -> None:
        self.spec, self.hp, self.progress, self.options = spec, hp, progress, options
        self.seed = int(spec.get("seed") or 0)
        self.job_dir = job_dir
        self.classification: Any = None  # a ClassificationSetup when metrics are asked for
        self.resume_state: dict[str, Any] | None = None

    def prepare(
        self, base: Path, train: list[dict], valid: list[dict] | None, lora_on: bool
    ) -> None:
        import torch

        torch.manual_seed(self.seed)
        self.device = pick_device(self.spec.get("device"))
        self.bf16 = hf.autocast_dtype(self.device) is not None
        self.lora = lora_on
        resume = self.options.resume_from
        if resume is not None:
            from ftui.server import checkpoints

            try:
                self.resume_state = checkpoints.load_state(resume)
            except (OSError, ValueError, RuntimeError) as e:
                raise TrainError(f"Cannot resume from {resume}: {e}") from e
        # Full fine-tuning resumes from the checkpoint's weights (fp32, exact). LoRA resumes from
        # the base plus the saved adapters: the checkpoint's merged weights could not be split
        # back into base and adapter exactly.
        weights = resume if resume is not None and not lora_on else base
        self.model, self.tokenizer, self.specials = load_base(weights, self.device)
        if lora_on:
            from ftui.server import lora

            self.model = lora.wrap(self.model)
            if self.resume_state is not None:
                try:
                    lora.load_adapter_state(self.model, self.resume_state.get("lora_adapter") or {})
                except ValueError as e:
                    raise TrainError(f"Cannot resume from {resume}: {e}") from e
        self.eos_id = eos_token_id(self.specials)
        pad = self.tokenizer.pad_token_id
        self.pad_id = self.eos_id if pad is None else int(pad)
        self.max_len = self.tokenizer.model_max_length
        if self.classification is not None:
            self.classification.bind_tokenizer(self.tokenizer, self.eos_id)
            self.class_prompts = [self._prompt_ids(e["prompt"]) for e in valid or []]
        self.train = [encode_example(self.tokenizer, self.specials, e, self.max_len) for e in train]
        self.valid = [
            encode_example(self.tokenizer, self.specials, e, self.max_len) for e in valid or []
        ]
        self.model.train()

    def _prompt_ids(self, prompt: str) -> list[int]:
        # As served: the ids a completion request for this prompt is conditioned on.
        return encode.scoring_prompt(self.tokenizer, self.specials, prompt, self.max_len)

    # --- pieces of a step

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batch(self, examples: list[Encoded], indices: list[int]) -> dict[str, torch.Tensor]:
        return collate(
            [examples[i] for i in indices], self.pad_id, self.hp["prompt_loss_weight"], self.device
        )

    def _forward(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        with self._autocast():
            logits = self.model(
                input_ids=t["input_ids"], attention_mask=t["attention_mask"], use_cache=False
            ).logits
        return _loss_and_counts(
            logits, t["input_ids"], t["target_weights"], t["completion_targets"]
        )

    def _evaluate(self, batches: list[list[int]]) -> dict[str, float]:
        """Metrics pooled over the given validation batches (sums, then ratios)."""
        import torch

        totals: dict[str, float] = {}
        self.model.eval()
        try:
            with torch.no_grad():
                for indices in batches:
                    _, counts = self._forward(self._batch(self.valid, indices))
                    for k, v in counts.items():
                        totals[k] = totals.get(k, 0.0) + v
        finally:
            self.model.train()
        return _ratios(totals)

    def _full_validation(self) -> dict[str, float]:
        by_length = sorted(range(len(self.valid)), key=lambda i: len(self.valid[i].ids))
        size = self.hp["batch_size"]
        return self._evaluate([by_length[k : k + size] for k in range(0, len(by_length), size)])

    def _classification_metrics(self) -> dict[str, Any]:
        from ftui.server.classification import score_first_tokens

        with self._autocast():
            logprobs = score_first_tokens(
                self.model,
                self.class_prompts,
                self.classification.token_ids,
                self.pad_id,
                self.device,
                batch_size=max(1, min(self.hp["batch_size"], 32)),
            )
        return self.classification.metrics(logprobs)

    def _checkpoint(
        self, pos: Position, row: dict[str, Any], optimizer: Any, scheduler: Any
    ) -> Path:
        from ftui.server import checkpoints

        state: dict[str, Any] = {
            "step": pos.step,
            "epoch": pos.epoch,
            "done": pos.done,
            "order": pos.order,
            "tokens": pos.tokens,
            "examples": pos.examples,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": checkpoints.capture_rng(),
            "hyperparams": self.hp,
            "n_examples": len(self.train),
            "total_steps": row["total_steps"],
            "seed": self.seed,
            "lora": self.lora,
        }
        if self.lora:
            from ftui.server import lora

            state["lora_adapter"] = lora.adapter_state(self.model)
        root = self.options.checkpoints_dir or self.job_dir / "checkpoints"
        path = checkpoints.save_checkpoint(
            root, pos.step, lambda d: write_model(self.model, self.tokenizer, d), state
        )
        metrics: dict[str, Any] = {
            "step": pos.step,
            "train_loss": row["training_loss"],
            "train_mean_token_accuracy": row["training_token_accuracy"],
            "valid_loss": row.get("validation_loss"),
            "valid_mean_token_accuracy": row.get("validation_token_accuracy"),
            "full_valid_loss": None,
            "full_valid_mean_token_accuracy": None,
        }
        if self.valid:
            full = self._full_validation()
            metrics["full_valid_loss"] = full["loss"]
            metrics["full_valid_mean_token_accuracy"] = full["token_accuracy"]
        self.progress.emit(
            "checkpoint",
            step=pos.step,
            epoch=pos.epoch,
            path=str(path),
            metrics=metrics,
            time=time.time(),
        )
        checkpoints.drop_older_states(root, path)
        return path

    def _restore(self, optimizer: Any, scheduler: Any, total: int) -> Position:
        state = self.resume_state
        assert state is not None
        expected = {
            "hyperparams": self.hp,
            "n_examples": len(self.train),
            "total_steps": total,
            "seed": self.seed,
            "lora": self.lora,
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise TrainError(
                    f"Cannot resume from {self.options.resume_from}: it was written by a run "
                    f"with {key} = {state.get(key)!r}, but this job has {value!r}."
                )
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        return Position(
            step=state["step"],
            epoch=state["epoch"],
            done=state["done"],
            order=[list(b) for b in state["order"]],
            tokens=state["tokens"],
            examples=state["examples"],
        )

    # --- the loop

    def fit(self) -> bool:
        """Train to the end (True) or until a pause request (False, after a checkpoint)."""
        from ftui.server import lora

        hp = self.hp
        n_epochs, batch_size = hp["n_epochs"], hp["batch_size"]
        total = n_epochs * steps_per_epoch(len(self.train), batch_size)
        base_lr = lora.BASE_LEARNING_RATE if self.lora else BASE_LEARNING_RATE
        optimizer, scheduler = make_optimizer(
            self.model, hp["learning_rate_multiplier"] * base_lr, total
        )
        lengths = [len(e.ids) for e in self.train]
        valid_batches = build_batches([len(e.ids) for e in self.valid], batch_size, self.seed, 0)
        every = self.options.validation_every or max(1, total // VALIDATION_POINTS)
        if self.resume_state is not None:
            pos = self._restore(optimizer, scheduler, total)
        else:
            pos = Position(order=build_batches(lengths, batch_size, self.seed, 1))
        self.progress.emit("started", time=time.time())
        if self.resume_state is not None:
            from ftui.server import checkpoints

            self.progress.emit("resumed", from_step=pos.step, time=time.time())
            # Last, after everything that draws random numbers (LoRA init included).
            checkpoints.restore_rng(self.resume_state["rng"])
            self.resume_state = None
        while pos.epoch <= n_epochs:
            assert pos.order is not None
            while pos.done < len(pos.order):
                indices = pos.order[pos.done]
                t = self._batch(self.train, indices)
                learning_rate = optimizer.param_groups[0]["lr"]
                loss, counts = self._forward(t)
                metrics = {**_ratios(counts), "loss": loss.item()}
                if not math.isfinite(metrics["loss"]):
                    raise TrainError(
                        f"Training diverged: the loss became {metrics['loss']} at step "
                        f"{pos.step + 1}. Try a lower learning_rate_multiplier."
                    )
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                n_tokens = int(t["attention_mask"].sum())
                pos.step += 1
                pos.done += 1
                pos.tokens += n_tokens
                pos.examples += len(indices)
                last = pos.step == total
                epoch_end = pos.done == len(pos.order)
                pausing = _pause_requested and not last
                checkpointing = pausing or (epoch_end and self.options.checkpoints_dir is not None)
                row = {
                    "step": pos.step,
                    "epoch": pos.epoch,
                    "total_steps": total,
                    "elapsed_tokens": pos.tokens,
                    "elapsed_examples": pos.examples,
                    "training_loss": metrics["loss"],
                    "training_sequence_accuracy": metrics["sequence_accuracy"],
                    "training_token_accuracy": metrics["token_accuracy"],
                    "learning_rate": learning_rate,
                    "tokens": n_tokens,
                }
                if valid_batches and (pos.step % every == 0 or last or checkpointing):
                    # One validation batch per point, cycling, like the legacy results file.
                    v = self._evaluate([valid_batches[(pos.step // every) % len(valid_batches)]])
                    row["validation_loss"] = v["loss"]
                    row["validation_sequence_accuracy"] = v["sequence_accuracy"]
                    row["validation_token_accuracy"] = v["token_accuracy"]
                if self.classification is not None and epoch_end:
                    row.update(self._classification_metrics())
                self.progress.emit("step", **row, time=time.time())
                if epoch_end:
                    self.progress.emit(
                        "epoch", epoch=pos.epoch, n_epochs=n_epochs, time=time.time()
                    )
                if checkpointing:
                    path = self._checkpoint(pos, row, optimizer, scheduler)
                if pausing:
                    self.progress.emit("paused", step=pos.step, path=str(path), time=time.time())
                    return False
            pos.epoch += 1
            pos.done = 0
            if pos.epoch <= n_epochs:
                pos.order = build_batches(lengths, batch_size, self.seed, pos.epoch)
        return True


def train_job(job_dir: Path, progress: Progress) -> None:
    spec = read_spec(job_dir)
    options = read_options(spec)
    train = load_examples(spec["training_file"], "training file")
    valid = None
    if spec.get("validation_file"):
        valid = load_examples(spec["validation_file"], "validation file")
    classification = None
    if options.classification is not None:
        from ftui.server.classification import ClassificationSetup

        classification = ClassificationSetup(options.classification, train, valid)
    hp = resolve_hyperparams(spec.get("hyperparams") or {}, len(train))
    total = hp["n_epochs"] * steps_per_epoch(len(train), hp["batch_size"])
    base = _resolve_base(spec)  # before importing torch: a missing model fails in a blink
    lora_on = use_lora(options.lora, count_parameters(base))
    progress.emit("hyperparams", **hp, n_examples=len(train), total_steps=total, lora=lora_on)
    _setup_runtime(thread_count(spec))
    trainer = Trainer(spec, hp, progress, options, job_dir)
    trainer.classification = classification
    trainer.prepare(base, train, valid, lora_on)
    if not trainer.fit():
        return  # paused: the checkpoint is the state to resume from; no final model
    output_dir = Path(spec["output_dir"])
    save_model(trainer.model, trainer.tokenizer, output_dir)
    progress.emit("model_saved", path=str(output_dir), time=time.time())


def _failure_message(exc: BaseException) -> str:
    from ftui.server.basemodels import BaseModelConfigError, BaseModelNotFound

    if isinstance(exc, TrainError | BaseModelNotFound | BaseModelConfigError):
        return str(exc)
    problem = _disk_problem(exc)
    if problem is not None:
        return problem.job_failure
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return (
            "Training ran out of memory. Try a smaller batch_size, shorter examples or a "
            "smaller base model."
        )
    return f"{UNEXPECTED}: {type(exc).__name__}: {exc}"


def _disk_problem(exc: BaseException) -> StorageProblem | None:
    problem = storage_problem(exc)
    # Only a write fails for want of room or on a read-only mount; a permission error may be a
    # base model it cannot read, and keeps its own words.
    return problem if problem is not None and problem.kind in ("full", "read_only") else None


def _say(text: str) -> None:
    """To train.log, if the disk lets us: failing to log must not hide the failure itself."""
    with contextlib.suppress(OSError):
        print(text.rstrip("\n"), file=sys.stderr, flush=True)


def run(job_dir: str | os.PathLike[str]) -> int:
    """Run the job in ``job_dir``; returns the exit status (0 success or paused, 1 failure)."""
    global _pause_requested
    job_dir = Path(job_dir)
    _set_worker_env()
    _pause_requested = False
    try:  # first thing: SIGUSR1's default action would kill the process
        previous = signal.signal(signal.SIGUSR1, _request_pause)
    except ValueError:  # not the main thread (tests may call run() from one): no pausing
        previous = None
    try:
        try:
            progress = Progress(job_dir / progresslog.FILE_NAME)
        except OSError as e:
            _say(f"ftui train: cannot write progress to {job_dir}: {e}")
            return 1
        try:
            train_job(job_dir, progress)
            return 0
        except Exception as exc:
            message = _failure_message(exc)
            if message.startswith(UNEXPECTED):
                _say(traceback.format_exc())  # a bug or an environment problem: keep the detail
            else:
                _say(f"ftui train: {message}")
            problem = _disk_problem(exc)
            code = f"storage_{problem.kind}" if problem else "training_failed"
            try:
                progress.emit("failed", message=message, code=code)
            except OSError as e:  # a full disk: the runner finds out why by itself
                _say(f"ftui train: cannot report the failure: {e}")
            return 1
        finally:
            progress.close()
    finally:
        if previous is not None:
            signal.signal(signal.SIGUSR1, previous)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftui.server.train JOB_DIR", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
