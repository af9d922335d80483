"""The training child process: ``python -m ftui.server.training.train JOB_DIR``.

Reads ``JOB_DIR/spec.json`` (a :class:`~ftui.server.training.jobspec.JobSpec`), fine-tunes a
Hugging Face causal LM (fully, or with LoRA adapters whose merged weights are saved) on
prompt/completion or chat examples, appends the rows of :mod:`ftui.server.training.progress` to
``JOB_DIR/progress.jsonl`` and writes the model to the spec's ``output_dir`` atomically. Exit
status 0 after ``model_saved`` or ``paused``; 1 after ``failed``.

SIGUSR1 pauses: the current step finishes, a checkpoint is written and the process exits 0 with a
``paused`` row (a pause that arrives during the last step is ignored: the job completes).
SIGTERM keeps its default action.

The file reads top to bottom as a recipe: examples → batches → encoding → loss → model →
optimizer and schedule → :class:`Trainer` (setup, then ``fit`` with ``_step``, ``_row``,
``_maybe_validate``, ``_maybe_checkpoint``) → ``train_job`` → ``run``. It is over 500 lines
as one recipe, examples in and a model out, kept in one file to be read in order (as nanoGPT's
train.py is); the spec, the hyperparameter rules, the progress rows and the event wording live
in jobspec, dialects, progress and events; tokens come from encode and models from hf (both
shared with serving), the batch tensors and the loss from loss.

torch and transformers are imported inside functions: tests call the pure-Python parts
(batching, encoding) without them; peft only when LoRA is used.

Loss (legacy semantics): per target position, weight 1 for completion targets,
``prompt_loss_weight`` for prompt targets, 0 for padding; loss = Σ w·ce / Σ w over the whole
batch, so a padded batch of one gives exactly that example's loss. A batch may run as several
micro-batches (``micro_batch_size``): each adds its Σ w·ce / (the whole batch's Σ w) to the
gradient, so the step equals one pass over the whole batch. Gradients are then clipped to a
total norm of ``max_grad_norm`` (default 1.0; 0 turns clipping off).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftui import records
from ftui.server import basemodels, hf
from ftui.server.diskio import StorageProblem, storage_problem
from ftui.server.jobs import resultsfile
from ftui.server.training import checkpoints, encode, lora, progress, progresslog
from ftui.server.training.classification import ClassificationSetup, score_first_tokens
from ftui.server.training.encode import Encoded
from ftui.server.training.jobspec import BASE_LEARNING_RATE, JobSpec, Resolved, TrainError
from ftui.server.training.loss import add_counts, chunks, collate, loss_and_counts, ratios
from ftui.server.training.progress import Metrics, ProgressWriter

if TYPE_CHECKING:
    import torch

# Length-aware batching sorts windows of this many batches by length: big enough to cut padding,
# small enough that the order stays well shuffled.
LENGTH_WINDOW_BATCHES = 50
# Validation runs on one validation batch about this many times per job (and on the last step).
VALIDATION_POINTS = 25
# Classification metrics score prompts in batches of at most this many.
CLASSIFICATION_BATCH = 32
# What a checkpoint reports, under current-API names (full_valid_* are computed for it).
CHECKPOINT_METRICS = ("step", "train_loss", "train_mean_token_accuracy", "valid_loss",
                      "valid_mean_token_accuracy")  # fmt: skip
UNEXPECTED = "Training failed unexpectedly"

__all__ = ["TrainError"]  # re-exported: the job failure callers catch


# ---------------------------------------------------------------- data


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


# ---------------------------------------------------------------- batches


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
    if option is None:
        return n_parameters > lora.AUTO_THRESHOLD
    if not isinstance(option, bool):
        raise TrainError(f"The job spec's 'lora' must be true, false or null; got {option!r}.")
    return option


def write_model(model: Any, tokenizer: Any, directory: Path) -> None:
    """A plain Hugging Face model directory; a LoRA (peft) model is written with merged weights."""
    if hasattr(model, "peft_config"):
        lora.save_merged(model, directory)
    else:
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def save_model(model: Any, tokenizer: Any, output_dir: Path) -> None:
    """Write to ``output_dir.partial`` and rename, so output_dir is absent or complete."""
    checkpoints.write_dir_atomically(
        Path(output_dir), lambda tmp: write_model(model, tokenizer, tmp)
    )


def _setup_runtime(threads: int) -> None:
    hf.configure(threads)


def _resolve_base(spec: JobSpec) -> Path:
    if spec.base_model_path is not None:
        if not (spec.base_model_path / "config.json").is_file():
            raise TrainError(
                f"The model to continue training from ({spec.base_model}) is missing "
                f"its files at {spec.base_model_path}; it may have been deleted."
            )
        return spec.base_model_path
    return basemodels.resolve(spec.base_model, spec.data_dir)


# ---------------------------------------------------------------- optimizer and schedule


def build_optimizer(model: Any, lr: float) -> Any:
    """AdamW over the trainable parameters, no weight decay."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    try:  # fused: optimizer step 0.75 s → 0.16 s on CPU (measured on the tiny model)
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def build_schedule(optimizer: Any, total_steps: int) -> Any:
    """Linear decay from the full rate (first step) towards 0 (after the last step); no warm-up."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / total_steps)
    )


def clip_gradients(optimizer: Any, max_norm: float) -> float:
    """Scale the gradients down to a total norm of ``max_norm`` (0: leave them); returns the
    total norm before clipping."""
    import torch

    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


# ---------------------------------------------------------------- the run


@dataclass
class PauseRequest:
    """Set by SIGUSR1: finish the current step, write a checkpoint, exit 0 ("paused")."""

    requested: bool = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True


@dataclass
class Position:
    """Where training stands: ``done`` of ``order`` (this epoch's batches) are trained."""

    step: int = 0
    epoch: int = 1
    done: int = 0
    order: list[list[int]] = field(default_factory=list)
    tokens: int = 0
    examples: int = 0


@dataclass
class StepResult:
    training: Metrics
    tokens: int
    examples: int
    grad_norm: float


class Trainer:
    """One run: ``setup`` loads everything in named steps, ``fit`` trains and reports."""

    def __init__(
        self,
        spec: JobSpec,
        hp: Resolved,
        total_steps: int,
        progress: ProgressWriter,
        job_dir: Path,
        pause: PauseRequest,
        classification: ClassificationSetup | None = None,
    ) -> None:
        self.spec, self.hp, self.total = spec, hp, total_steps
        self.progress, self.job_dir, self.pause = progress, job_dir, pause
        self.classification = classification
        self.checkpoints_root = spec.checkpoints_dir or job_dir / "checkpoints"

    # --- setup

    def setup(self, base: Path, train: list[dict], valid: list[dict] | None, lora_on: bool) -> None:
        self._setup_device()
        self._setup_resume_state()
        self._setup_model(base, lora_on)
        self._setup_data(train, valid or [])
        self._setup_optimizer()
        self._setup_schedule()

    def _setup_device(self) -> None:
        import torch

        torch.manual_seed(self.spec.seed)
        self.device = pick_device(self.spec.device)
        self.bf16 = hf.autocast_dtype(self.device) is not None

    def _setup_resume_state(self) -> None:
        self.resume_state: dict[str, Any] | None = None
        if self.spec.resume_from is not None:
            try:
                self.resume_state = checkpoints.load_state(self.spec.resume_from)
            except (OSError, ValueError, RuntimeError) as e:
                raise TrainError(f"Cannot resume from {self.spec.resume_from}: {e}") from e

    def _setup_model(self, base: Path, lora_on: bool) -> None:
        self.lora = lora_on
        resume = self.spec.resume_from
        # Full fine-tuning resumes from the checkpoint's weights (fp32, exact). LoRA resumes from
        # the base plus the saved adapters: the checkpoint's merged weights could not be split
        # back into base and adapter exactly.
        weights = resume if resume is not None and not lora_on else base
        self.model, self.tokenizer, self.specials = load_base(weights, self.device)
        if lora_on:
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
        self.model.train()

    def _setup_data(self, train: list[dict], valid: list[dict]) -> None:
        if self.classification is not None:
            self.classification.bind_tokenizer(self.tokenizer, self.eos_id)
            self.class_prompts = [self._prompt_ids(e["prompt"]) for e in valid]
        self.train = [encode_example(self.tokenizer, self.specials, e, self.max_len) for e in train]
        self.valid = [encode_example(self.tokenizer, self.specials, e, self.max_len) for e in valid]
        self.lengths = [len(e.ids) for e in self.train]
        size = self.hp.batch_size
        self.valid_batches = build_batches(
            [len(e.ids) for e in self.valid], size, self.spec.seed, 0
        )
        self.validate_every = self.spec.validation_every or max(1, self.total // VALIDATION_POINTS)

    def _setup_optimizer(self) -> None:
        base_lr = lora.BASE_LEARNING_RATE if self.lora else BASE_LEARNING_RATE
        self.optimizer = build_optimizer(self.model, self.hp.learning_rate_multiplier * base_lr)

    def _setup_schedule(self) -> None:
        self.scheduler = build_schedule(self.optimizer, self.total)

    def _prompt_ids(self, prompt: str) -> list[int]:
        # As served: the ids a completion request for this prompt is conditioned on.
        return encode.scoring_prompt(self.tokenizer, self.specials, prompt, self.max_len)

    # --- the loop

    def fit(self) -> bool:
        """Train to the end (True) or until a pause request (False, after a checkpoint)."""
        pos = self._start()
        while pos.epoch <= self.hp.n_epochs:
            while pos.done < len(pos.order):
                learning_rate = self.optimizer.param_groups[0]["lr"]
                result = self._step(pos.order[pos.done], pos.step + 1)
                pos.step += 1
                pos.done += 1
                pos.tokens += result.tokens
                pos.examples += result.examples
                last = pos.step == self.total
                epoch_end = pos.done == len(pos.order)
                pausing = self.pause.requested and not last
                checkpointing = pausing or (epoch_end and self.spec.checkpoints_dir is not None)
                row = self._row(pos, result, learning_rate, last or checkpointing, epoch_end)
                self.progress.write(row)
                if epoch_end:
                    self.progress.write(progress.Epoch(pos.epoch, self.hp.n_epochs))
                path = self._maybe_checkpoint(checkpointing, pos, row)
                if pausing:
                    self.progress.write(progress.Paused(pos.step, str(path)))
                    return False
            pos.epoch += 1
            pos.done = 0
            if pos.epoch <= self.hp.n_epochs:
                pos.order = build_batches(
                    self.lengths, self.hp.batch_size, self.spec.seed, pos.epoch
                )
        return True

    def _start(self) -> Position:
        """A fresh position, or the checkpoint's; then the ``started`` (and ``resumed``) rows."""
        if self.resume_state is None:
            pos = Position(order=build_batches(self.lengths, self.hp.batch_size, self.spec.seed, 1))
            self.progress.write(progress.Started())
            return pos
        pos = self._restore()
        self.progress.write(progress.Started())
        self.progress.write(progress.Resumed(pos.step))
        # Last, after everything that draws random numbers (LoRA init included).
        checkpoints.restore_rng(self.resume_state["rng"])
        self.resume_state = None
        return pos

    def _step(self, indices: list[int], step: int) -> StepResult:
        """One optimizer step on one batch, run as micro-batches that add up to the batch."""
        parts = [self._batch(self.train, mb) for mb in chunks(indices, self.hp.micro_batch_size)]
        total_weight = sum(t["target_weights"].sum() for t in parts)
        counts: dict[str, float] = {}
        loss_value = 0.0
        for t in parts:
            loss, part_counts = self._forward(t, total_weight)
            loss_value += loss.item()
            if not math.isfinite(loss_value):
                raise TrainError(
                    f"Training diverged: the loss became {loss_value} at step {step}. "
                    "Try a lower learning_rate_multiplier."
                )
            loss.backward()
            add_counts(counts, part_counts)
        grad_norm = clip_gradients(self.optimizer, self.hp.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        r = ratios(counts)
        training = Metrics(loss_value, r.sequence_accuracy, r.token_accuracy)
        tokens = sum(int(t["attention_mask"].sum()) for t in parts)
        return StepResult(training, tokens, len(indices), grad_norm)

    def _row(
        self, pos: Position, result: StepResult, lr: float, force_validation: bool, epoch_end: bool
    ) -> progress.Step:
        return progress.Step(
            step=pos.step,
            epoch=pos.epoch,
            total_steps=self.total,
            elapsed_tokens=pos.tokens,
            elapsed_examples=pos.examples,
            training=result.training,
            learning_rate=lr,
            tokens=result.tokens,
            grad_norm=result.grad_norm,
            validation=self._maybe_validate(pos.step, force_validation),
            classification=self._classification_metrics() if epoch_end else {},
        )

    def _maybe_validate(self, step: int, force: bool) -> Metrics | None:
        """One validation batch per validation point, cycling, like the legacy results file."""
        if not self.valid_batches or not (force or step % self.validate_every == 0):
            return None
        which = (step // self.validate_every) % len(self.valid_batches)
        return self.evaluate([self.valid_batches[which]])

    def _maybe_checkpoint(self, due: bool, pos: Position, row: progress.Step) -> Path | None:
        if not due:
            return None
        state: dict[str, Any] = {
            "step": pos.step,
            "epoch": pos.epoch,
            "done": pos.done,
            "order": pos.order,
            "tokens": pos.tokens,
            "examples": pos.examples,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": checkpoints.capture_rng(),
            **self._identity(),
        }
        if self.lora:
            state["lora_adapter"] = lora.adapter_state(self.model)
        path = checkpoints.save_checkpoint(
            self.checkpoints_root,
            pos.step,
            lambda d: write_model(self.model, self.tokenizer, d),
            state,
        )
        metrics = resultsfile.current_metrics(row.values(), CHECKPOINT_METRICS)
        full = self.evaluate(chunks(self._by_length(), self.hp.batch_size)) if self.valid else None
        metrics["full_valid_loss"] = full.loss if full else None
        metrics["full_valid_mean_token_accuracy"] = full.token_accuracy if full else None
        self.progress.write(progress.Checkpoint(pos.step, pos.epoch, str(path), metrics))
        checkpoints.drop_older_states(self.checkpoints_root, path)
        return path

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must share with the run that resumes from it."""
        return {
            "hyperparams": self.hp.as_dict(),
            "n_examples": len(self.train),
            "total_steps": self.total,
            "seed": self.spec.seed,
            "lora": self.lora,
        }

    def _restore(self) -> Position:
        state = self.resume_state
        assert state is not None
        for key, value in self._identity().items():
            if state.get(key) != value:
                raise TrainError(
                    f"Cannot resume from {self.spec.resume_from}: it was written by a run "
                    f"with {key} = {state.get(key)!r}, but this job has {value!r}."
                )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        return Position(
            step=state["step"],
            epoch=state["epoch"],
            done=state["done"],
            order=[list(b) for b in state["order"]],
            tokens=state["tokens"],
            examples=state["examples"],
        )

    # --- forward passes and evaluation

    def _autocast(self) -> Any:
        import torch

        if self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batch(self, examples: list[Encoded], indices: list[int]) -> dict[str, torch.Tensor]:
        return collate(
            [examples[i] for i in indices], self.pad_id, self.hp.prompt_loss_weight, self.device
        )

    def _forward(
        self, t: dict[str, torch.Tensor], total_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        with self._autocast():
            logits = self.model(
                input_ids=t["input_ids"], attention_mask=t["attention_mask"], use_cache=False
            ).logits
        return loss_and_counts(
            logits, t["input_ids"], t["target_weights"], t["completion_targets"], total_weight
        )

    def _by_length(self) -> list[int]:
        return sorted(range(len(self.valid)), key=lambda i: len(self.valid[i].ids))

    def evaluate(self, batches: list[list[int]]) -> Metrics:
        """Validation metrics pooled over the given batches (sums, then ratios), each batch run
        in micro-batches like training."""
        import torch

        totals: dict[str, float] = {}
        self.model.eval()
        try:
            with torch.no_grad():
                for indices in batches:
                    for part in chunks(indices, self.hp.micro_batch_size):
                        add_counts(totals, self._forward(self._batch(self.valid, part))[1])
        finally:
            self.model.train()
        return ratios(totals)

    def _classification_metrics(self) -> dict[str, Any]:
        if self.classification is None:
            return {}
        with self._autocast():
            logprobs = score_first_tokens(
                self.model,
                self.class_prompts,
                self.classification.token_ids,
                self.pad_id,
                self.device,
                batch_size=max(1, min(self.hp.micro_batch_size, CLASSIFICATION_BATCH)),
            )
        return self.classification.metrics(logprobs)


def train_job(job_dir: Path, writer: ProgressWriter, pause: PauseRequest) -> None:
    spec = JobSpec.read(job_dir)
    train = load_examples(spec.training_file, "training file")
    valid = load_examples(spec.validation_file, "validation file") if spec.validation_file else None
    classification = None
    if spec.classification is not None:
        classification = ClassificationSetup(spec.classification, train, valid)
    hp = spec.hyperparams.resolve(len(train), spec.dialect)
    total = hp.n_epochs * steps_per_epoch(len(train), hp.batch_size)
    base = _resolve_base(spec)  # before importing torch: a missing model fails in a blink
    lora_on = use_lora(spec.lora, count_parameters(base))
    writer.write(progress.Hyperparams(hp.as_dict(), len(train), total, lora_on))
    _setup_runtime(spec.thread_count())
    trainer = Trainer(spec, hp, total, writer, job_dir, pause, classification)
    trainer.setup(base, train, valid, lora_on)
    if not trainer.fit():
        return  # paused: the checkpoint is the state to resume from; no final model
    save_model(trainer.model, trainer.tokenizer, spec.output_dir)
    writer.write(progress.ModelSaved(str(spec.output_dir)))


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, TrainError | basemodels.BaseModelNotFound | basemodels.BaseModelConfigError):
        return str(exc)
    problem = _disk_problem(exc)
    if problem is not None:
        return problem.job_failure
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return (
            "Training ran out of memory. Try a smaller micro_batch_size (the same training in "
            "smaller pieces), shorter examples or a smaller base model."
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
    job_dir = Path(job_dir)
    hf.set_runtime_env()  # before torch is first imported
    pause = PauseRequest()
    try:  # first thing: SIGUSR1's default action would kill the process
        previous = signal.signal(signal.SIGUSR1, pause)
    except ValueError:  # not the main thread (tests may call run() from one): no pausing
        previous = None
    try:
        try:
            writer = ProgressWriter(job_dir / progresslog.FILE_NAME)
        except OSError as e:
            _say(f"ftui train: cannot write progress to {job_dir}: {e}")
            return 1
        try:
            train_job(job_dir, writer, pause)
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
                writer.write(progress.Failed(message, code))
            except OSError as e:  # a full disk: the runner finds out why by itself
                _say(f"ftui train: cannot report the failure: {e}")
            return 1
        finally:
            writer.close()
    finally:
        if previous is not None:
            signal.signal(signal.SIGUSR1, previous)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftui.server.training.train JOB_DIR", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
