"""Training-process features on the tiny real model: classification metrics, validation columns,
checkpoints, pause (SIGUSR1) and resume, LoRA. No mocks: every job really trains."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftui.server import hf
from ftui.server.training import checkpoints as CK
from ftui.server.training import encode
from ftui.server.training import train as T
from ftui.server.training.jobspec import JobSpec
from tests.test_train import (
    finish,
    first_token_accuracy,
    make_job,
    progress,
    start_train,
)
from tests.tiny_model import NEGATIVE_WORDS, make_sentiment_examples

VALIDATION_KEYS = {"validation_loss", "validation_sequence_accuracy", "validation_token_accuracy"}


# ---------------------------------------------------------------- helpers


def steps_of(job: Path) -> list[dict]:
    return [r for r in progress(job) if r["type"] == "step"]


def of_type(job: Path, kind: str) -> list[dict]:
    return [r for r in progress(job) if r["type"] == kind]


def distinct_prompts(examples: list[dict]) -> list[dict]:
    seen: set[str] = set()
    out = []
    for e in examples:
        if e["prompt"] not in seen:
            seen.add(e["prompt"])
            out.append(e)
    return out


def wait_for_row(job: Path, kind: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until the child has written a row of this type (or has exited)."""
    path = job / "progress.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(r["type"] == kind for r in progress(job)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the child exited before writing {kind!r}: {finish(proc)[1]}")
        time.sleep(0.005)  # polling a file for a condition, not sleeping in place of one
    raise AssertionError(f"no {kind!r} row within {timeout} s")


def label_logprobs(model_dir: Path, examples: list[dict], labels: list[str]) -> list[list[float]]:
    """By hand: each prompt alone (no padding), log-softmax at its last position, read at each
    label's first token."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    firsts = [tokenizer(label, add_special_tokens=False)["input_ids"][0] for label in labels]
    out = []
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([tokenizer(e["prompt"])["input_ids"]])
            logp = model(input_ids=ids).logits[0, -1].double().log_softmax(-1)
            out.append([logp[t].item() for t in firsts])
    return out


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def flipped(examples: list[dict]) -> list[dict]:
    swap = {" positive": " negative", " negative": " positive"}
    return [{**e, "completion": swap[e["completion"]]} for e in examples]


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model fully fine-tuned on the sentiment task (≈100 % held out): a base whose
    label tokens are trained, for LoRA to re-map (a random tiny model's frozen embeddings are too
    small for LoRA alone to reach a confident prediction)."""
    job = make_job(
        tmp_path_factory.mktemp("sentiment") / "job",
        tiny_model_dir,
        make_sentiment_examples(400, seed=1),
        seed=5,
        n_epochs=8,
        batch_size=16,
        learning_rate_multiplier=10 / 3,
    )
    assert T.run(job) == 0, progress(job)[-1]
    return job / "model"


# ---------------------------------------------------------------- classification metrics


def test_binary_classification_metrics_equal_a_hand_computation(tmp_path, tiny_model_dir):
    train = make_sentiment_examples(160, seed=21)
    valid = distinct_prompts(make_sentiment_examples(40, seed=22))
    job = make_job(
        tmp_path / "job",
        tiny_model_dir,
        train,
        valid,
        seed=3,
        spec={
            "classification": {"n_classes": 2, "positive_class": " positive", "betas": [0.5, 2]},
            "checkpoints": {"dir": str(tmp_path / "job" / "checkpoints")},
        },
        n_epochs=2,
        batch_size=16,
        learning_rate_multiplier=1,
    )
    assert T.run(job) == 0, progress(job)[-1]
    steps = steps_of(job)
    keys = ["accuracy", "precision", "recall", "auroc", "auprc", "f0.5", "f2.0"]
    keys = [f"classification/{k}" for k in keys]
    # Only the epoch-end rows (10 and 20) carry them, in the legacy column order.
    assert [r["step"] for r in steps if "classification/accuracy" in r] == [10, 20]
    for ckpt in of_type(job, "checkpoint"):
        row = steps[ckpt["step"] - 1]
        assert [k for k in row if k.startswith("classification/")] == keys
        # The checkpoint holds the weights the metrics were computed with.
        lp = label_logprobs(Path(ckpt["path"]), valid, [" negative", " positive"])
        p_pos = [math.exp(b) / (math.exp(a) + math.exp(b)) for a, b in lp]
        truth = [e["completion"] == " positive" for e in valid]
        predicted = [p >= 0.5 for p in p_pos]
        tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
        fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
        pos = [s for s, t in zip(p_pos, truth, strict=True) if t]
        neg = [s for s, t in zip(p_pos, truth, strict=True) if not t]
        auroc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
        ap = sum(
            sum(t for s2, t in zip(p_pos, truth, strict=True) if s2 >= s)
            / sum(1 for s2 in p_pos if s2 >= s)
            for s in pos
        ) / len(pos)
        precision, recall = tp / (tp + fp), tp / (tp + fn)

        def f(beta: float, precision: float = precision, recall: float = recall) -> float:
            return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)

        expected = {
            "accuracy": sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(valid),
            "precision": precision,
            "recall": recall,
            "auroc": auroc,
            "auprc": ap,
            "f0.5": f(0.5),
            "f2.0": f(2.0),
        }
        for name, value in expected.items():
            assert row[f"classification/{name}"] == pytest.approx(value, abs=1e-6), name
    # The first epoch is not perfect yet, the last is better: the numbers carry information.
    first, last = (steps[s - 1] for s in (10, 20))
    assert first["classification/auroc"] < last["classification/auroc"]


def test_multiclass_metrics_equal_a_hand_computation(tmp_path, tiny_model_dir):
    def three_way(examples: list[dict]) -> list[dict]:
        # Half the negative words become a third class whose label starts with 'Ġne'.
        neutral = tuple(NEGATIVE_WORDS[5:])
        return [
            {**e, "completion": " neutral"} if any(w in e["prompt"] for w in neutral) else e
            for e in examples
        ]

    train = three_way(make_sentiment_examples(160, seed=31))
    valid = three_way(distinct_prompts(make_sentiment_examples(40, seed=32)))
    labels = [" negative", " neutral", " positive"]
    assert {e["completion"] for e in valid} == set(labels)
    job = make_job(
        tmp_path / "job",
        tiny_model_dir,
        train,
        valid,
        seed=3,
        spec={
            "classification": {"n_classes": 3, "positive_class": None},
            "checkpoints": {"dir": str(tmp_path / "job" / "checkpoints")},
        },
        n_epochs=2,
        batch_size=16,
        learning_rate_multiplier=10 / 3,
    )
    assert T.run(job) == 0, progress(job)[-1]
    steps = steps_of(job)
    for ckpt in of_type(job, "checkpoint"):
        row = steps[ckpt["step"] - 1]
        assert sorted(k for k in row if k.startswith("classification/")) == [
            "classification/accuracy",
            "classification/weighted_f1_score",
        ]
        lp = label_logprobs(Path(ckpt["path"]), valid, labels)
        predicted = [labels[max(range(3), key=lambda j, r=r: r[j])] for r in lp]
        truth = [e["completion"] for e in valid]
        weighted = 0.0
        for label in labels:
            tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
            n_pred, support = predicted.count(label), truth.count(label)
            f1 = 2 * tp / (n_pred + support) if n_pred + support else 0.0
            weighted += support * f1
        assert row["classification/accuracy"] == pytest.approx(
            sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(valid), abs=1e-12
        )
        assert row["classification/weighted_f1_score"] == pytest.approx(
            weighted / len(valid), abs=1e-12
        )


@pytest.mark.parametrize(
    ("classification", "completions", "needle"),
    [
        ({"positive_class": " yes"}, None, "classification_positive_class ' yes' is not one of"),
        ({"n_classes": 4}, None, "classification_n_classes is 4, but"),
        ({}, [" 1", " 0"], "' 0', ' 1' all start with token 'Ġ'"),
    ],
)
def test_bad_classification_setups_fail_the_job_clearly(
    tmp_path, tiny_model_dir, classification, completions, needle
):
    examples = make_sentiment_examples(16, seed=4)
    if completions:
        examples = [{**e, "completion": completions[i % 2]} for i, e in enumerate(examples)]
    job = make_job(
        tmp_path / "job",
        tiny_model_dir,
        examples,
        examples,
        spec={"classification": classification},
        n_epochs=1,
    )
    assert T.run(job) == 1
    rows = progress(job)
    assert rows[-1]["type"] == "failed" and needle in rows[-1]["message"]
    assert not any(r["type"] == "step" for r in rows)  # refused before training

    no_valid = make_job(
        tmp_path / "nv",
        tiny_model_dir,
        examples,
        spec={"classification": classification},
        n_epochs=1,
    )
    assert T.run(no_valid) == 1
    assert "give a validation_file" in progress(no_valid)[-1]["message"]


# ---------------------------------------------------------------- validation columns


def test_validation_columns_exactly_when_a_validation_file_is_given(tmp_path, tiny_model_dir):
    train = make_sentiment_examples(40, seed=6)
    valid = make_sentiment_examples(20, seed=7)
    options = {"validation_every": 3}
    plain = make_job(
        tmp_path / "plain",
        tiny_model_dir,
        train,
        seed=1,
        spec={**options, "checkpoints": {"dir": str(tmp_path / "plain" / "ck")}},
        n_epochs=2,
        batch_size=8,
    )
    with_valid = make_job(
        tmp_path / "valid",
        tiny_model_dir,
        train,
        valid,
        seed=1,
        spec={**options, "checkpoints": {"dir": str(tmp_path / "valid" / "ck")}},
        n_epochs=2,
        batch_size=8,
    )
    assert T.run(plain) == 0 and T.run(with_valid) == 0

    assert progress(plain)[-1]["type"] == "model_saved"
    assert not any(VALIDATION_KEYS & set(r) for r in steps_of(plain))
    for ckpt in of_type(plain, "checkpoint"):
        m = ckpt["metrics"]
        assert (
            m["valid_loss"] is m["full_valid_loss"] is m["full_valid_mean_token_accuracy"] is None
        )

    # Every 3rd step, the epoch ends (5, 10: checkpoints) and the last step: those rows only.
    steps = steps_of(with_valid)
    assert [r["step"] for r in steps if set(r) >= VALIDATION_KEYS] == [3, 5, 6, 9, 10]
    assert all(not (VALIDATION_KEYS & set(r)) for r in steps if r["step"] not in (3, 5, 6, 9, 10))
    ckpts = of_type(with_valid, "checkpoint")
    assert [c["step"] for c in ckpts] == [5, 10]
    for ckpt in ckpts:
        row, m = steps[ckpt["step"] - 1], ckpt["metrics"]
        assert m["step"] == ckpt["step"]
        assert m["train_loss"] == row["training_loss"]
        assert m["train_mean_token_accuracy"] == row["training_token_accuracy"]
        assert m["valid_loss"] == row["validation_loss"]
        assert m["valid_mean_token_accuracy"] == row["validation_token_accuracy"]
        # Full validation: Σ w·ce / Σ w pooled over every validation example, by hand.
        tokenizer = AutoTokenizer.from_pretrained(ckpt["path"])
        model = AutoModelForCausalLM.from_pretrained(ckpt["path"]).eval()
        specials = hf.specials(tokenizer, model.config, model.generation_config)
        num = den = right = n = 0.0
        with torch.no_grad():
            for e in valid:
                enc = encode.encode_legacy(tokenizer, specials, e["prompt"], e["completion"])
                logp = model(input_ids=torch.tensor([enc.ids])).logits[0].double().log_softmax(-1)
                for j in range(len(enc.ids) - 1):
                    is_completion = enc.completion[j + 1]
                    w = 1.0 if is_completion else 0.01
                    num += w * -logp[j, enc.ids[j + 1]].item()
                    den += w
                    if is_completion:
                        n += 1
                        right += int(logp[j].argmax()) == enc.ids[j + 1]
        assert m["full_valid_loss"] == pytest.approx(num / den, rel=1e-5)
        assert m["full_valid_mean_token_accuracy"] == pytest.approx(right / n, abs=1e-12)


# ---------------------------------------------------------------- checkpoints


def test_a_checkpoint_per_epoch_written_atomically_and_usable_as_a_model(tmp_path, tiny_model_dir):
    root = tmp_path / "job" / "checkpoints"
    root.mkdir(parents=True)
    (root / "step-0000008.partial").mkdir()  # left by an earlier, killed attempt
    (root / "step-0000008.partial" / "junk").write_text("x")
    train = make_sentiment_examples(32, seed=8)
    job = make_job(
        tmp_path / "job",
        tiny_model_dir,
        train,
        seed=2,
        spec={"checkpoints": {"dir": str(root)}},
        n_epochs=3,
        batch_size=8,
    )
    assert T.run(job) == 0, progress(job)[-1]
    rows = progress(job)
    kinds = [r["type"] for r in rows]
    # After each epoch row: its checkpoint row; the final model after the last one.
    assert kinds[2:] == (["step"] * 4 + ["epoch", "checkpoint"]) * 3 + ["model_saved"]
    ckpts = of_type(job, "checkpoint")
    names = ["step-0000004", "step-0000008", "step-0000012"]
    assert [Path(c["path"]) for c in ckpts] == [root / n for n in names]
    assert [(c["step"], c["epoch"]) for c in ckpts] == [(4, 1), (8, 2), (12, 3)]
    assert sorted(p.name for p in root.iterdir()) == names  # no .partial left
    # Only the newest keeps the trainer state; all are plain model directories.
    assert [(root / n / CK.STATE_FILE).exists() for n in names] == [False, False, True]
    for n in names:
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
            p.name for p in (root / n).iterdir()
        }
        AutoModelForCausalLM.from_pretrained(root / n)
    assert_same_weights(root / names[-1], job / "model")
    assert not torch.equal(
        weights(root / names[0])["model.embed_tokens.weight"],
        weights(root / names[1])["model.embed_tokens.weight"],
    )
    state = torch.load(root / names[-1] / CK.STATE_FILE, weights_only=True)
    assert (state["step"], state["epoch"], state["done"]) == (12, 3, 4)
    tiny_tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tiny_specials = hf.specials(tiny_tokenizer)
    assert state["order"] == T.build_batches(
        [len(encode.encode_example(tiny_tokenizer, tiny_specials, e, 256).ids) for e in train],
        8,
        2,
        3,
    )

    # Continue training from a checkpoint: it is just a model directory.
    more = make_job(
        tmp_path / "more",
        "ft-checkpoint",
        train,
        seed=2,
        spec={"base_model_path": str(root / names[0])},
        n_epochs=1,
        batch_size=8,
    )
    assert T.run(more) == 0, progress(more)[-1]
    assert steps_of(more)[0]["training_loss"] < steps_of(job)[0]["training_loss"]


def test_writing_a_directory_atomically_keeps_the_old_one_when_writing_fails(tmp_path):
    final = tmp_path / "step-0000001"
    CK.write_dir_atomically(final, lambda d: (d / "a").write_text("old"))

    def broken(d: Path) -> None:
        (d / "a").write_text("new, half written")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        CK.write_dir_atomically(final, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000001"]
    assert (final / "a").read_text() == "old"
    CK.write_dir_atomically(final, lambda d: (d / "b").write_text("new"))
    assert [p.name for p in final.iterdir()] == ["b"]


# ---------------------------------------------------------------- pause and resume


@pytest.mark.parametrize(
    ("lora", "n_examples", "batch_size"),
    [(False, 120, 8), (True, 120, 8), (False, 16, 16)],
    ids=["full-mid-epoch", "lora-mid-epoch", "full-epoch-end"],
)
def test_pause_writes_a_checkpoint_and_resuming_equals_an_uninterrupted_run(
    tmp_path, tiny_model_dir, sentiment_model, lora, n_examples, batch_size
):
    train = make_sentiment_examples(n_examples, seed=9)
    valid = make_sentiment_examples(8, seed=10)
    base = sentiment_model if lora else tiny_model_dir

    def job(name: str, **extra: Any) -> Path:
        spec = {"lora": lora, "checkpoints": {"dir": str(tmp_path / name / "checkpoints")}}
        return make_job(
            tmp_path / name,
            base,
            train,
            valid,
            seed=4,
            spec={**spec, **extra},
            n_epochs=3,
            batch_size=batch_size,
            learning_rate_multiplier=1,
        )

    paused = job("paused")
    # The child lists every module it imports: peft only when LoRA is used.
    proc = start_train(paused, PYTHONPROFILEIMPORTTIME="1")
    # The handler is installed before anything is written; the pause lands while the child
    # loads torch and the model, so it stops after its first step.
    wait_for_row(paused, "hyperparams", proc)
    proc.send_signal(signal.SIGUSR1)
    reference = job("reference")
    assert T.run(reference) == 0, progress(reference)[-1]
    code, out = finish(proc)
    assert code == 0, out
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.splitlines() if "|" in line}
    assert {"torch", "transformers"} <= imported
    assert ("peft" in imported) is lora

    rows = progress(paused)
    last = rows[-1]
    total = 3 * math.ceil(n_examples / batch_size)
    assert last["type"] == "paused" and 1 <= last["step"] < total
    k = last["step"]
    checkpoint = Path(last["path"])
    assert rows[-2]["type"] == "checkpoint" and rows[-2]["path"] == str(checkpoint)
    assert checkpoint == tmp_path / "paused" / "checkpoints" / f"step-{k:07d}"
    assert (checkpoint / CK.STATE_FILE).is_file() and not (tmp_path / "paused" / "model").exists()
    AutoModelForCausalLM.from_pretrained(checkpoint)  # servable as is
    if batch_size == n_examples:
        assert rows[-3]["type"] == "epoch"  # one step per epoch: the pause fell on an epoch end

    # Resumed as the runner does it: same checkpoints directory.
    resumed = job(
        "resumed", resume_from=str(checkpoint), checkpoints={"dir": str(checkpoint.parent)}
    )
    assert T.run(resumed) == 0, progress(resumed)[-1]
    rrows = progress(resumed)
    assert [r["type"] for r in rrows[:3]] == ["hyperparams", "started", "resumed"]
    assert rrows[2]["from_step"] == k
    assert rrows[0]["lora"] is lora

    def losses(steps: list[dict]) -> list[float]:
        return [r["training_loss"] for r in steps]

    ref_steps, rsteps = steps_of(reference), steps_of(resumed)
    assert [r["step"] for r in steps_of(paused)] == list(range(1, k + 1))
    assert [r["step"] for r in rsteps] == list(range(k + 1, total + 1))
    assert losses(steps_of(paused)) + losses(rsteps) == losses(ref_steps)  # bit for bit
    assert [r["elapsed_tokens"] for r in rsteps] == [r["elapsed_tokens"] for r in ref_steps[k:]]
    assert [r["learning_rate"] for r in rsteps] == [r["learning_rate"] for r in ref_steps[k:]]
    assert_same_weights(tmp_path / "resumed" / "model", tmp_path / "reference" / "model")
    # The resumed run's newer checkpoints took over the trainer state.
    assert not (checkpoint / CK.STATE_FILE).exists()
    newest = Path(of_type(resumed, "checkpoint")[-1]["path"])
    assert newest.parent == checkpoint.parent and (newest / CK.STATE_FILE).is_file()


def test_resume_needs_the_trainer_state_and_the_same_job(tmp_path, tiny_model_dir):
    train = make_sentiment_examples(16, seed=12)
    root = tmp_path / "first" / "checkpoints"
    first = make_job(
        tmp_path / "first",
        tiny_model_dir,
        train,
        spec={"checkpoints": {"dir": str(root)}},
        n_epochs=2,
        batch_size=8,
    )
    assert T.run(first) == 0
    older, newest = root / "step-0000002", root / "step-0000004"
    stale = make_job(
        tmp_path / "stale",
        tiny_model_dir,
        train,
        spec={"resume_from": str(older)},
        n_epochs=2,
        batch_size=8,
    )
    assert T.run(stale) == 1
    assert "only the newest checkpoint" in progress(stale)[-1]["message"]
    other = make_job(
        tmp_path / "other",
        tiny_model_dir,
        train,
        spec={"resume_from": str(newest)},
        n_epochs=3,
        batch_size=8,
    )
    assert T.run(other) == 1
    message = progress(other)[-1]["message"]
    assert "Cannot resume" in message and "n_epochs" in message


# ---------------------------------------------------------------- LoRA


def test_lora_trains_and_saves_merged_weights_that_load_without_peft(tmp_path, sentiment_model):
    # Swap the labels: the base now gets every held-out example wrong.
    held_out = flipped(make_sentiment_examples(100, seed=3))
    assert first_token_accuracy(sentiment_model, held_out) <= 0.1
    job = make_job(
        tmp_path / "lora",
        sentiment_model,
        flipped(make_sentiment_examples(400, 11)),
        seed=5,
        spec={"lora": True},
        n_epochs=4,
        batch_size=16,
        learning_rate_multiplier=0.3,
    )
    assert T.run(job) == 0, progress(job)[-1]
    assert progress(job)[0]["lora"] is True
    steps = steps_of(job)
    assert steps[0]["learning_rate"] == pytest.approx(0.3 * 1e-2)  # LoRA: multiplier × 1e-2
    model_dir = job / "model"
    files = {p.name for p in model_dir.iterdir()}
    assert "adapter_config.json" not in files and "model.safetensors" in files
    # Every base tensor under its plain name, changed where adapters were merged.
    merged, base = weights(model_dir), weights(sentiment_model)
    assert merged.keys() == base.keys()
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"],
        base["model.layers.0.self_attn.q_proj.weight"],
    )
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert first_token_accuracy(model_dir, held_out) >= 0.9
    # Loads with plain transformers where peft cannot even be imported.
    code = (
        "import sys; sys.modules['peft'] = None\n"
        "from transformers import AutoModelForCausalLM\n"
        f"print(type(AutoModelForCausalLM.from_pretrained({str(model_dir)!r})).__name__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert proc.stdout.strip() == "LlamaForCausalLM", proc.stderr


def test_lora_is_automatic_above_the_size_threshold(tiny_model_dir):
    n = T.count_parameters(tiny_model_dir)
    assert n == AutoModelForCausalLM.from_pretrained(tiny_model_dir).num_parameters()
    assert T.use_lora(None, n) is False and T.use_lora(None, 200_000_001) is True
    assert T.use_lora(True, n) is True and T.use_lora(False, 10**10) is False
    with pytest.raises(T.TrainError, match="'lora'"):
        T.use_lora("yes", n)


def test_thread_count_follows_the_spec_or_shares_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)

    def threads(**given: Any) -> int:
        minimal = {"training_file": "t.jsonl", "output_dir": "/m", "data_dir": "/d"}
        return JobSpec.from_json({**minimal, **given}).thread_count()

    assert threads(threads=3) == 3
    assert threads() == 16
    assert threads(threads=None, concurrent_jobs=3) == 5
    assert threads(concurrent_jobs=32) == 1


def test_progress_rows_are_json_lines(tmp_path, tiny_model_dir):
    """Nothing in the rows (metrics that may be undefined included) breaks strict JSON."""
    examples = make_sentiment_examples(16, seed=13)
    valid = [e for e in make_sentiment_examples(20, seed=14) if e["completion"] == " negative"]
    job = make_job(
        tmp_path / "job",
        tiny_model_dir,
        examples,
        valid,
        spec={"classification": {"positive_class": " positive"}},
        n_epochs=1,
        batch_size=8,
    )
    assert T.run(job) == 0
    text = (job / "progress.jsonl").read_text()
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in text.splitlines()]
    last = [r for r in rows if r["type"] == "step"][-1]
    # Every validation example is negative: AUROC and AUPRC are undefined → null.
    assert last["classification/auroc"] is None and last["classification/auprc"] is None


# ---------------------------------------------------------------- micro-batches and clipping


def test_micro_batches_train_exactly_like_whole_batches(tmp_path, tiny_model_dir):
    """batch_size 8 run as micro-batches of 2 (and of 3: uneven) is the same training: Σ w·ce
    over the batch divided by the batch's Σ w, whatever pieces it is computed in."""
    train = make_sentiment_examples(32, seed=15)
    valid = make_sentiment_examples(8, seed=16)

    def job(name: str, **extra: Any) -> Path:
        return make_job(tmp_path / name, tiny_model_dir, train, valid, seed=6,
                        spec={"validation_every": 2}, n_epochs=2, batch_size=8,
                        learning_rate_multiplier=1, **extra)  # fmt: skip

    whole, by_two, by_three = (
        job("whole"),
        job("two", micro_batch_size=2),
        job("three", micro_batch_size=3),
    )
    assert T.run(whole) == 0 and T.run(by_two) == 0 and T.run(by_three) == 0
    assert progress(by_two)[0]["micro_batch_size"] == 2
    reference = steps_of(whole)
    for other in (by_two, by_three):
        steps = steps_of(other)
        assert len(steps) == len(reference) == 8
        for a, b in zip(reference, steps, strict=True):
            assert (a["tokens"], a["elapsed_examples"]) == (b["tokens"], b["elapsed_examples"])
            assert abs(a["training_loss"] - b["training_loss"]) < 1e-5
            assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-4 * a["grad_norm"]
            assert a["training_token_accuracy"] == b["training_token_accuracy"]
            if "validation_loss" in a:
                assert abs(a["validation_loss"] - b["validation_loss"]) < 1e-5
        wa, wb = weights(whole / "model"), weights(other / "model")
        assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_gradient_clipping_scales_to_the_max_norm_and_can_be_turned_off(tmp_path, tiny_model_dir):
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)

    def grads_of(scale: float) -> float:
        optimizer.zero_grad()
        (layer(torch.ones(2, 4)).sum() * scale).backward()
        return float(torch.nn.utils.get_total_norm([p.grad for p in layer.parameters()]))

    norm = grads_of(10.0)
    assert T.clip_gradients(optimizer, 1.0) == pytest.approx(norm)  # the norm before clipping
    assert grads_of_now(layer) == pytest.approx(1.0, rel=1e-5)
    norm = grads_of(10.0)
    assert T.clip_gradients(optimizer, 0) == pytest.approx(norm)  # 0: reported, not clipped
    assert grads_of_now(layer) == pytest.approx(norm)
    small = grads_of(1e-3)
    T.clip_gradients(optimizer, 1.0)  # below the bound: left as it is
    assert grads_of_now(layer) == pytest.approx(small)

    # In a job: the default clips at 1.0, which changes training when gradients are larger.
    train = make_sentiment_examples(24, seed=17)

    def run(name: str, **extra: Any) -> list[dict]:
        job = make_job(tmp_path / name, tiny_model_dir, train, seed=2, n_epochs=1,
                       batch_size=8, learning_rate_multiplier=1, **extra)  # fmt: skip
        assert T.run(job) == 0, progress(job)[-1]
        return steps_of(job)

    clipped, unclipped = run("clipped"), run("unclipped", max_grad_norm=0)
    assert clipped[0]["grad_norm"] == unclipped[0]["grad_norm"] > 1.0  # same start, clipped
    assert clipped[0]["training_loss"] == unclipped[0]["training_loss"]
    assert clipped[-1]["training_loss"] != unclipped[-1]["training_loss"]


def grads_of_now(layer: torch.nn.Module) -> float:
    return float(torch.nn.utils.get_total_norm([p.grad for p in layer.parameters()]))
