"""The training child process: ``python -m ftui.server.train JOB_DIR``.

Reads ``JOB_DIR/spec.json``, fully fine-tunes a Hugging Face causal LM on prompt/completion or
chat examples, appends one JSON object per line to ``JOB_DIR/progress.jsonl`` and writes the model
to ``spec["output_dir"]`` atomically. Exit status 0 after ``model_saved``; 1 after ``failed``.

torch and transformers are imported inside functions: the server imports this module's siblings
at start-up, and tests call the pure-Python parts (hyperparameters, batching) without them.

Loss (legacy semantics, engine-notes): per target position, weight 1 for completion targets,
``prompt_loss_weight`` for prompt targets, 0 for padding; loss = Σ w·ce / Σ w over the whole
batch, so a padded batch of one gives exactly that example's loss.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
CHATML_FALLBACK = "<|im_start|>{role}\n{content}<|im_end|>\n"
CHATML_GENERATION_PROMPT = "<|im_start|>assistant\n"


class TrainError(Exception):
    """A failure whose message is meant for the user as is."""


@dataclass
class Encoded:
    """One tokenized example: ``completion[i]`` says whether token i belongs to a completion."""

    ids: list[int]
    completion: list[bool]


# ---------------------------------------------------------------- progress


class Progress:
    """Appends JSON lines to progress.jsonl, flushed per line: the runner tails the file and
    only consumes whole lines."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (long-lived)

    def emit(self, type_: str, **fields: Any) -> None:
        self._file.write(json.dumps({"type": type_, **fields}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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


def _check_example(obj: Any, where: str) -> dict[str, Any]:
    if isinstance(obj, dict) and "messages" in obj:
        messages = obj["messages"]
        ok = isinstance(messages, list) and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in messages
        )
        if not ok:
            raise TrainError(f"{where}: 'messages' must be a list of {{role, content}} strings.")
        if not any(m["role"] == "assistant" for m in messages):
            raise TrainError(f"{where}: the conversation has no assistant message to learn from.")
        return {"messages": messages}
    if (
        isinstance(obj, dict)
        and isinstance(obj.get("prompt"), str)
        and isinstance(obj.get("completion"), str)
    ):
        return {"prompt": obj["prompt"], "completion": obj["completion"]}
    raise TrainError(
        f'{where}: expected {{"prompt": str, "completion": str}} or {{"messages": [...]}}.'
    )


def load_examples(path: str | os.PathLike[str], what: str = "training file") -> list[dict]:
    """Parse a JSONL file of examples; errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as e:
        raise TrainError(f"Cannot read the {what} {path}: {e.strerror or e}.") from e
    except UnicodeDecodeError as e:
        raise TrainError(f"The {what} {path} is not UTF-8 text: {e}.") from e
    examples = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{what} {path} line {lineno}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise TrainError(f"{where} is not valid JSON: {e}.") from e
        examples.append(_check_example(obj, where))
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


def eos_token_id(tokenizer: Any, model_config: Any = None) -> int:
    eos = tokenizer.eos_token_id
    if eos is None and model_config is not None:
        eos = model_config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
        raise TrainError("The base model's tokenizer has no end-of-sequence token to train with.")
    return int(eos)


def _token_ids(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []


def encode_legacy(tokenizer: Any, prompt: str, completion: str, eos_id: int) -> Encoded:
    """Prompt and completion tokenized separately (so the boundary matches inference, where the
    prompt is tokenized alone), EOS appended so the model learns to stop."""
    p = _token_ids(tokenizer, prompt, special=True)  # BOS, if this tokenizer adds one
    if p and p[-1] == eos_id:
        p = p[:-1]  # some tokenizers also append EOS; it must not sit between prompt and completion
    c = _token_ids(tokenizer, completion) + [eos_id]
    return Encoded(p + c, [False] * len(p) + [True] * len(c))


def _render_chat(tokenizer: Any, messages: list[dict], generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    text = "".join(CHATML_FALLBACK.format(**m) for m in messages)
    return text + (CHATML_GENERATION_PROMPT if generation_prompt else "")


def chat_segments(tokenizer: Any, messages: list[dict]) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_completion) pieces: each assistant reply is
    the text the template adds after the generation prompt (prompt too if its "weight" is 0);
    everything else is prompt.
    Messages after the last assistant reply teach nothing and are dropped."""
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render_chat(tokenizer, messages[:i], generation_prompt=True)
        through = _render_chat(tokenizer, messages[: i + 1], generation_prompt=False)
        if not before.startswith(done) or not through.startswith(before):
            raise TrainError(
                "The base model's chat template does not render this conversation as a "
                "growing prefix, so its assistant replies cannot be located (does it start "
                "with an assistant message?)."
            )
        trained = message.get("weight", 1) != 0  # current API: weight 0 skips a reply
        segments += [(before[len(done) :], False), (through[len(before) :], trained)]
        done = through
    return segments


def encode_chat(tokenizer: Any, messages: list[dict], eos_id: int) -> Encoded:
    ids: list[int] = []
    completion: list[bool] = []
    for text, is_completion in chat_segments(tokenizer, messages):
        seg = _token_ids(tokenizer, text)
        flags = [is_completion] * len(seg)
        if is_completion:
            if eos_id in seg:
                # What the template adds after the end of turn (often "\n") is not the reply.
                last = len(seg) - 1 - seg[::-1].index(eos_id)
                flags = [True] * (last + 1) + [False] * (len(seg) - last - 1)
            else:
                seg, flags = seg + [eos_id], flags + [True]
        ids += seg
        completion += flags
    # What the template adds after the last reply (e.g. "\n") is not worth a training target.
    end = len(completion) - completion[::-1].index(True) if True in completion else len(ids)
    return Encoded(ids[:end], completion[:end])


def truncate(example: Encoded, max_len: int) -> Encoded:
    """Fit the context: drop tokens from the start of the prompt; a completion longer than the
    context on its own keeps its beginning."""
    if len(example.ids) <= max_len:
        return example
    first = example.completion.index(True) if True in example.completion else 0
    if len(example.ids) - first > max_len:
        return Encoded(
            example.ids[first : first + max_len], example.completion[first : first + max_len]
        )
    return Encoded(example.ids[-max_len:], example.completion[-max_len:])


def encode_example(tokenizer: Any, example: dict, eos_id: int, max_len: int) -> Encoded:
    if "messages" in example:
        encoded = encode_chat(tokenizer, example["messages"], eos_id)
    else:
        encoded = encode_legacy(tokenizer, example["prompt"], example["completion"], eos_id)
    return truncate(encoded, max_len)


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


def weighted_loss_and_metrics(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    target_weights: torch.Tensor,
    completion_targets: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss Σ w·ce / Σ w over all target positions of the batch (differentiable), and metrics:
    token accuracy over completion targets, sequence accuracy = every completion target right."""
    import torch
    import torch.nn.functional as F

    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    loss = (ce * target_weights).sum() / target_weights.sum().clamp_min(1e-12)
    with torch.no_grad():
        correct = logits.argmax(-1) == targets
        n_completion = completion_targets.sum()
        token_acc = (correct & completion_targets).sum() / n_completion.clamp_min(1)
        rows = completion_targets.any(dim=1)
        rows_right = (correct | ~completion_targets).all(dim=1) & rows
        seq_acc = rows_right.sum() / rows.sum().clamp_min(1)
    return loss, {
        "loss": loss.item(),
        "sequence_accuracy": seq_acc.item(),
        "token_accuracy": token_acc.item(),
    }


# ---------------------------------------------------------------- model and devices


def pick_device(requested: str | None) -> str:
    import torch

    requested = requested or "auto"
    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise TrainError("The job asks for device 'cuda', but PyTorch sees no CUDA GPU here.")
    return "cpu"


def model_context(model: Any, tokenizer: Any) -> int:
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    usable = [int(x) for x in limits if isinstance(x, int | float) and 0 < x < 1e9]
    return min(usable) if usable else 2048


def load_base(path: Path, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    # fp32: reproducible losses; bf16 rounding would change results between devices (engine-notes)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    # SmolLM2 leaves model_max_length at 1e30; the saved tokenizer should state the real limit.
    tokenizer.model_max_length = model_context(model, tokenizer)
    return model, tokenizer


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


def save_model(model: Any, tokenizer: Any, output_dir: Path) -> None:
    """Write to ``output_dir.partial`` and rename, so output_dir is absent or complete."""
    partial = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by an earlier, killed attempt
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if output_dir.exists():  # os.replace cannot replace a non-empty directory
        old = output_dir.with_name(output_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(output_dir, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(partial, output_dir)


# ---------------------------------------------------------------- the job


def _set_worker_env() -> None:
    # Must run before torch is first imported (the bundled-model conversion in _resolve_base
    # imports it too): OpenMP reads these at start-up. PASSIVE stops idle worker threads
    # spinning, which made 2 threads 2.5–4× slower than 1 on a shared machine (engine-notes).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _setup_runtime(threads: int | None) -> None:
    import torch
    import transformers

    torch.set_num_threads(max(1, int(threads or os.cpu_count() or 1)))
    transformers.utils.logging.disable_progress_bar()


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


def _evaluate(model: Any, tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(
            input_ids=tensors["input_ids"],
            attention_mask=tensors["attention_mask"],
            use_cache=False,
        ).logits
        _, metrics = weighted_loss_and_metrics(
            logits, tensors["input_ids"], tensors["target_weights"], tensors["completion_targets"]
        )
    model.train()
    return metrics


class Trainer:
    """State of one run; ``fit`` emits the step and epoch rows."""

    def __init__(self, spec: dict[str, Any], hp: dict[str, Any], progress: Progress) -> None:
        self.spec, self.hp, self.progress = spec, hp, progress
        self.seed = int(spec.get("seed") or 0)

    def prepare(self, base: Path, train: list[dict], valid: list[dict] | None) -> None:
        import torch

        torch.manual_seed(self.seed)
        self.device = pick_device(self.spec.get("device"))
        self.model, self.tokenizer = load_base(base, self.device)
        self.eos_id = eos_token_id(self.tokenizer, self.model.config)
        pad = self.tokenizer.pad_token_id
        self.pad_id = self.eos_id if pad is None else int(pad)
        max_len = self.tokenizer.model_max_length
        self.train = [encode_example(self.tokenizer, e, self.eos_id, max_len) for e in train]
        self.valid = [encode_example(self.tokenizer, e, self.eos_id, max_len) for e in valid or []]
        self.model.train()

    def _batch(self, examples: list[Encoded], indices: list[int]) -> dict[str, torch.Tensor]:
        return collate(
            [examples[i] for i in indices], self.pad_id, self.hp["prompt_loss_weight"], self.device
        )

    def fit(self) -> None:
        hp = self.hp
        n_epochs, batch_size = hp["n_epochs"], hp["batch_size"]
        total = n_epochs * steps_per_epoch(len(self.train), batch_size)
        lr = hp["learning_rate_multiplier"] * BASE_LEARNING_RATE
        optimizer, scheduler = make_optimizer(self.model, lr, total)
        lengths = [len(e.ids) for e in self.train]
        valid_batches = build_batches([len(e.ids) for e in self.valid], batch_size, self.seed, 0)
        valid_every = max(1, total // VALIDATION_POINTS)
        step = tokens_seen = examples_seen = 0
        self.progress.emit("started", time=time.time())
        for epoch in range(1, n_epochs + 1):
            for indices in build_batches(lengths, batch_size, self.seed, epoch):
                step += 1
                t = self._batch(self.train, indices)
                logits = self.model(
                    input_ids=t["input_ids"], attention_mask=t["attention_mask"], use_cache=False
                ).logits
                loss, metrics = weighted_loss_and_metrics(
                    logits, t["input_ids"], t["target_weights"], t["completion_targets"]
                )
                if not math.isfinite(metrics["loss"]):
                    raise TrainError(
                        f"Training diverged: the loss became {metrics['loss']} at step {step}. "
                        "Try a lower learning_rate_multiplier."
                    )
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                n_tokens = int(t["attention_mask"].sum())
                tokens_seen += n_tokens
                examples_seen += len(indices)
                row = {
                    "step": step,
                    "epoch": epoch,
                    "total_steps": total,
                    "elapsed_tokens": tokens_seen,
                    "elapsed_examples": examples_seen,
                    "training_loss": metrics["loss"],
                    "training_sequence_accuracy": metrics["sequence_accuracy"],
                    "training_token_accuracy": metrics["token_accuracy"],
                    "tokens": n_tokens,
                }
                if valid_batches and (step % valid_every == 0 or step == total):
                    # One validation batch per point, cycling, like the legacy results file.
                    batch = valid_batches[(step // valid_every) % len(valid_batches)]
                    v = _evaluate(self.model, self._batch(self.valid, batch))
                    row["validation_loss"] = v["loss"]
                    row["validation_sequence_accuracy"] = v["sequence_accuracy"]
                    row["validation_token_accuracy"] = v["token_accuracy"]
                self.progress.emit("step", **row, time=time.time())
            self.progress.emit("epoch", epoch=epoch, n_epochs=n_epochs, time=time.time())


def train_job(job_dir: Path, progress: Progress) -> None:
    spec = read_spec(job_dir)
    train = load_examples(spec["training_file"], "training file")
    valid = None
    if spec.get("validation_file"):
        valid = load_examples(spec["validation_file"], "validation file")
    hp = resolve_hyperparams(spec.get("hyperparams") or {}, len(train))
    total = hp["n_epochs"] * steps_per_epoch(len(train), hp["batch_size"])
    progress.emit("hyperparams", **hp, n_examples=len(train), total_steps=total)
    base = _resolve_base(spec)  # before importing torch: a missing model fails in a blink
    _setup_runtime(spec.get("threads"))
    trainer = Trainer(spec, hp, progress)
    trainer.prepare(base, train, valid)
    trainer.fit()
    output_dir = Path(spec["output_dir"])
    save_model(trainer.model, trainer.tokenizer, output_dir)
    progress.emit("model_saved", path=str(output_dir), time=time.time())


def _failure_message(exc: BaseException) -> str:
    from ftui.server.basemodels import BaseModelConfigError, BaseModelNotFound

    if isinstance(exc, TrainError | BaseModelNotFound | BaseModelConfigError):
        return str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return (
            "Training ran out of memory. Try a smaller batch_size, shorter examples or a "
            "smaller base model."
        )
    return f"{UNEXPECTED}: {type(exc).__name__}: {exc}"


def run(job_dir: str | os.PathLike[str]) -> int:
    """Run the job in ``job_dir``; returns the exit status (0 success, 1 failure)."""
    job_dir = Path(job_dir)
    _set_worker_env()
    try:
        progress = Progress(job_dir / "progress.jsonl")
    except OSError as e:
        print(f"ftui train: cannot write progress to {job_dir}: {e}", file=sys.stderr)
        return 1
    try:
        train_job(job_dir, progress)
        return 0
    except Exception as exc:
        message = _failure_message(exc)
        if message.startswith(UNEXPECTED):
            traceback.print_exc()  # a bug or an environment problem: keep the detail in the log
        else:
            print(f"ftui train: {message}", file=sys.stderr)
        progress.emit("failed", message=message)
        return 1
    finally:
        progress.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftui.server.train JOB_DIR", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
