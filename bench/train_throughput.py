#!/usr/bin/env python3
"""Benchmark ftui's training loop against a plain Hugging Face ``Trainer``, full and LoRA.

Same model (the bundled SmolLM2-135M-Instruct, converted once into --data-dir, or --model DIR),
same examples, batch size, number of steps, learning rate and schedule, same thread count. Each
run is its own fresh process with ``OMP_WAIT_POLICY=PASSIVE`` (as the server starts training),
and the four runs alternate (ftui full, Trainer full, ftui LoRA, Trainer LoRA, per round) so that
they share the machine's load. Timed: the training steps only (from ftui's ``started`` row to its
last ``step`` row; around ``Trainer.train()``), not loading or saving the model.

tokens/s counts the non-padding tokens trained on. Both sides see every example exactly once
(one epoch of steps × batch_size examples), so they train on the same number of tokens. ftui
groups examples of similar length into batches (less padding); the plain Trainer pads each
random batch to its longest example, as it does by default. Loss targets: ftui weighs prompt
tokens by prompt_loss_weight (0.01); the Trainer gets the usual -100 labels on the prompt. Both
compute logits over the whole sequence, so the work per token is the same.

    .venv/bin/python bench/train_throughput.py                      # ~5-10 minutes on 2 cores
    .venv/bin/python bench/train_throughput.py --steps 6 --rounds 2 --model /path/to/model
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftui-bench"
LR_FULL, LR_LORA = 3e-5, 1e-3  # ftui's defaults at learning_rate_multiplier 0.1

WORDS = (  # noqa: SIM905 (one string reads better than 52 quoted words)
    "the movie book meal trip show song game was felt seemed great awful boring lovely "
    "brilliant dreadful pleasant tedious and but then because although really very quite "
    "rather somewhat story actors plot music ending beginning characters scenes dialogue "
    "pacing we they I you it this that those these after before during while"
).split()


def make_examples(n: int, seed: int) -> list[dict[str, str]]:
    """Prompts of 8-60 words and completions of 1-20 words: a spread of lengths, as real data."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60)))
        completion = " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20)))
        examples.append({"prompt": prompt.capitalize() + ".\n\n###\n\n", "completion": completion})
    return examples


# ---------------------------------------------------------------- workers (fresh processes)


def worker_ftui(job_dir: Path) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "ftui.server.training.train", str(job_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    rows = [json.loads(x) for x in (job_dir / "progress.jsonl").read_text().splitlines()]
    if proc.returncode != 0:
        raise SystemExit(f"ftui training failed: {rows[-1]}\n{proc.stderr[-2000:]}")
    started = next(r["time"] for r in rows if r["type"] == "started")
    steps = [r for r in rows if r["type"] == "step"]
    return {
        "steps": len(steps),
        "tokens": sum(r["tokens"] for r in steps),
        "seconds": steps[-1]["time"] - started,
        "first_loss": steps[0]["training_loss"],
        "last_loss": steps[-1]["training_loss"],
    }


def worker_hf(spec: dict, lora: bool, out: Path) -> None:
    """A plain Trainer run; writes its figures to ``out`` as JSON."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from ftui.server import hf
    from ftui.server.training import encode
    from ftui.server.training import train as T

    torch.set_num_threads(spec["threads"])
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    base = spec["base_model_path"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if lora:
        from ftui.server.training import lora as L

        model = L.wrap(model)  # the same adapters ftui uses: r 8, α 16, all linear layers
    specials = hf.specials(tokenizer, model.config, model.generation_config)
    eos = T.eos_token_id(specials)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    features = []
    for e in T.load_examples(spec["training_file"]):
        # identical tokens
        enc = encode.encode_legacy(tokenizer, specials, e["prompt"], e["completion"])
        labels = [t if c else -100 for t, c in zip(enc.ids, enc.completion, strict=True)]
        features.append({"input_ids": enc.ids, "labels": labels})

    def collate(batch: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, f in enumerate(batch):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    hp = spec["hyperparams"]
    args = TrainingArguments(
        output_dir=str(out.parent / "hf-output"),
        per_device_train_batch_size=hp["batch_size"],
        max_steps=len(features) // hp["batch_size"],
        learning_rate=LR_LORA if lora else LR_FULL,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=spec["seed"],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    losses: list[float] = []

    class Losses(transformers.TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=collate,
        callbacks=[Losses()],
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    out.write_text(
        json.dumps(
            {
                "steps": result.global_step,
                "tokens": sum(len(f["input_ids"]) for f in features),
                "seconds": seconds,
                "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None,
            }
        )
    )


def run_hf(job_dir: Path, lora: bool) -> dict:
    out = job_dir / f"hf-{'lora' if lora else 'full'}.json"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker-hf", str(job_dir / "spec.json"), str(out)]
    proc = subprocess.run(cmd + (["--lora"] if lora else []), env=env, cwd=REPO, text=True,
                          capture_output=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"Trainer run failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


# ---------------------------------------------------------------- the benchmark


def make_job(root: Path, name: str, model: Path, args: argparse.Namespace, lora: bool) -> Path:
    job = root / name
    job.mkdir(parents=True)
    examples = make_examples(args.steps * args.batch_size, seed=args.seed)
    train = job / "train.jsonl"
    train.write_text("".join(json.dumps(e) + "\n" for e in examples))
    spec = {
        "job_id": f"bench-{name}",
        "base_model": str(model),
        "base_model_path": str(model),
        "data_dir": str(args.data_dir),
        "training_file": str(train),
        "validation_file": None,
        "hyperparams": {
            "n_epochs": 1,
            "batch_size": args.batch_size,
            "learning_rate_multiplier": 0.1,
            "prompt_loss_weight": None,
        },
        "seed": args.seed,
        "output_dir": str(job / "model"),
        "device": "cpu",
        "threads": args.threads,
        "lora": lora,
    }
    (job / "spec.json").write_text(json.dumps(spec))
    return job


def resolve_model(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model).resolve()
    from ftui.server import basemodels

    print(f"resolving the bundled model into {args.data_dir} (first time: ~20 s conversion)")
    return basemodels.resolve(basemodels.BUNDLED_ID, args.data_dir, allow_download=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a Hugging Face model directory (default: bundled)")
    parser.add_argument("--data-dir", type=Path, default=CACHE / "data")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="full,lora", help="full, lora or both")
    parser.add_argument("--worker-hf", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_hf:
        spec = json.loads(Path(args.worker_hf[0]).read_text())
        worker_hf(spec, args.lora, Path(args.worker_hf[1]))
        return 0

    model = resolve_model(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(
        f"model {model}\n{args.steps} steps × batch {args.batch_size}, {args.threads} threads, "
        f"{args.rounds} round(s); load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="ftui-bench-") as tmp:
        for r in range(args.rounds):
            for mode in modes:
                lora = mode == "lora"
                job = make_job(Path(tmp), f"r{r}-{mode}", model, args, lora)
                for impl, fn in (("ftui", lambda j=job: worker_ftui(j)),
                                 ("Trainer", lambda j=job, lo=lora: run_hf(j, lo))):  # fmt: skip
                    res = fn()
                    results.setdefault((mode, impl), []).append(res)
                    print(
                        f"  round {r + 1} {mode:4} {impl:7}: {res['steps']} steps, "
                        f"{res['tokens']} tokens in {res['seconds']:.1f} s = "
                        f"{res['tokens'] / res['seconds']:.1f} tokens/s "
                        f"(loss {res['first_loss']:.3f} → {res['last_loss']:.3f})",
                        flush=True,
                    )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print(f"{'mode':5} {'ftui tok/s':>11} {'Trainer tok/s':>14} {'ftui/Trainer':>13}")
    for mode in modes:

        def rate(impl: str, mode: str = mode) -> float:
            runs = results[(mode, impl)]
            return sum(x["tokens"] for x in runs) / sum(x["seconds"] for x in runs)

        ours, theirs = rate("ftui"), rate("Trainer")
        print(f"{mode:5} {ours:11.1f} {theirs:14.1f} {ours / theirs:12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
