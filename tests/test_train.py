"""The training child process on a tiny real model: no mocks, real optimisation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftui.server import hf
from ftui.server.training import encode, jobspec
from ftui.server.training import loss as L
from ftui.server.training import train as T
from tests.tiny_model import EOS, build_tokenizer, make_sentiment_examples

REPO = Path(__file__).resolve().parents[1]
STEP_KEYS = {
    "type", "step", "epoch", "total_steps", "elapsed_tokens", "elapsed_examples",
    "training_loss", "training_sequence_accuracy", "training_token_accuracy", "tokens", "time",
    "learning_rate", "grad_norm",
}  # fmt: skip


# ---------------------------------------------------------------- helpers


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_job(
    job_dir: Path,
    base: Path | str,
    train: list[dict],
    valid: list[dict] | None = None,
    seed: int = 0,
    spec: dict[str, Any] | None = None,
    **hyperparams: Any,
) -> Path:
    job_dir.mkdir(parents=True, exist_ok=True)
    hp = {"n_epochs": None, "batch_size": None, "learning_rate_multiplier": None}
    hp |= {"prompt_loss_weight": None, **hyperparams}
    spec = {
        "job_id": "ft-test",
        "dialect": "legacy",
        "base_model": str(base),
        "base_model_path": None,
        "data_dir": str(job_dir / "data"),
        "training_file": str(write_jsonl(job_dir / "train.jsonl", train)),
        "validation_file": str(write_jsonl(job_dir / "valid.jsonl", valid)) if valid else None,
        "hyperparams": hp,
        "seed": seed,
        "output_dir": str(job_dir / "model"),
        "device": "cpu",
        "threads": 1,  # the machine has 2 cores shared with other tests
        **(spec or {}),
    }
    (job_dir / "spec.json").write_text(json.dumps(spec))
    return job_dir


def start_train(job_dir: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ftui.server.training.train", str(job_dir)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def progress(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / "progress.jsonl").read_text().splitlines()]


def first_token_accuracy(model_dir: Path, examples: list[dict]) -> float:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    right = 0
    with torch.no_grad():
        for e in examples:
            ids = tokenizer(e["prompt"])["input_ids"]
            want = tokenizer(e["completion"], add_special_tokens=False)["input_ids"][0]
            right += int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()) == want
    return right / len(examples)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def specials(tokenizer):
    return hf.specials(tokenizer)


# ---------------------------------------------------------------- hyperparameters and batching


@pytest.mark.parametrize(
    ("n_examples", "batch_size", "multiplier"),
    [(10, 1, 0.05), (2000, 4, 0.05), (2500, 5, 0.1), (32000, 64, 0.1), (32500, 65, 0.2),
     (10**6, 256, 0.2)],
)  # fmt: skip
def test_null_hyperparams_resolve_with_legacy_defaults(n_examples, batch_size, multiplier):
    hp = jobspec.resolve_hyperparams(
        {"n_epochs": None, "batch_size": None, "learning_rate_multiplier": None}, n_examples
    )
    assert hp.as_dict() == {
        "n_epochs": 4,
        "batch_size": batch_size,
        "learning_rate_multiplier": multiplier,
        "prompt_loss_weight": 0.01,
        "max_grad_norm": 1.0,
        "micro_batch_size": batch_size,
    }
    # The current API's "auto" trains 3 epochs.
    assert jobspec.resolve_hyperparams({}, n_examples, "current").n_epochs == 3


def test_given_hyperparams_are_kept_and_bad_ones_refused():
    requested = {"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": 0.5}
    requested |= {"prompt_loss_weight": 0, "max_grad_norm": 0, "micro_batch_size": 2}
    assert jobspec.resolve_hyperparams(requested, 1000).as_dict() == {
        "n_epochs": 2,
        "batch_size": 3,
        "learning_rate_multiplier": 0.5,
        "prompt_loss_weight": 0.0,
        "max_grad_norm": 0.0,
        "micro_batch_size": 2,
    }
    # The multiplier default follows the final batch size, given or not.
    assert jobspec.resolve_hyperparams({"batch_size": 100}, 10).learning_rate_multiplier == 0.2
    # A micro-batch larger than the batch is the batch.
    hp = jobspec.resolve_hyperparams({"batch_size": 4, "micro_batch_size": 9}, 10)
    assert hp.micro_batch_size == 4
    bad_values = ({"n_epochs": 0}, {"batch_size": 2.5}, {"learning_rate_multiplier": -1},
                  {"max_grad_norm": -1}, {"micro_batch_size": 0})  # fmt: skip
    for bad in bad_values:
        with pytest.raises(T.TrainError, match=next(iter(bad))):
            jobspec.resolve_hyperparams(bad, 100)


def test_batches_cover_every_example_once_grouped_by_length_and_seeded():
    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    batches = T.build_batches(lengths, 16, seed=3, epoch=1)
    assert len(batches) == T.steps_per_epoch(1000, 16) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert sum(len(b) < 16 for b in batches) == 1
    assert batches == T.build_batches(lengths, 16, seed=3, epoch=1)
    assert batches != T.build_batches(lengths, 16, seed=3, epoch=2)
    assert batches != T.build_batches(lengths, 16, seed=4, epoch=1)

    def padded(bs: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in bs)

    unsorted = [list(range(k, min(k + 16, 1000))) for k in range(0, 1000, 16)]
    assert padded(batches) < 0.7 * padded(unsorted)


# ---------------------------------------------------------------- encoding


def test_legacy_example_is_prompt_then_completion_then_eos(tokenizer, specials):
    eos = tokenizer.convert_tokens_to_ids(EOS)
    e = encode.encode_legacy(tokenizer, specials, "The movie was great.\n\n###\n\n", " positive")
    prompt = tokenizer("The movie was great.\n\n###\n\n")["input_ids"]
    label = tokenizer(" positive", add_special_tokens=False)["input_ids"]
    assert e.ids == prompt + label + [eos]
    assert e.completion == [False] * len(prompt) + [True] * (len(label) + 1)


def test_chat_example_marks_only_assistant_replies_as_completion(tokenizer, specials):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "yes?"},
        {"role": "assistant", "content": "no"},
    ]
    e = encode.encode_chat(tokenizer, specials, messages)
    completions, current = [], []
    for tok, flag in zip(e.ids, e.completion, strict=True):
        if flag:
            current.append(tok)
        elif current:
            completions.append(current)
            current = []
    completions.append(current)
    assert [tokenizer.decode(c) for c in completions] == ["hello<|im_end|>", "no<|im_end|>"]
    # The whole sequence is the template's rendering, minus what follows the last reply.
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(e.ids) == rendered.removesuffix("\n")

    # A reply with weight 0 (current API) is context, not a target.
    skipped = encode.encode_chat(
        tokenizer, specials, [*messages[:2], {**messages[2], "weight": 0}, *messages[3:]]
    )
    assert skipped.ids == e.ids
    assert tokenizer.decode([t for t, f in zip(e.ids, skipped.completion, strict=True) if f]) == (
        "no<|im_end|>"
    )

    tokenizer_without_template = build_tokenizer()
    tokenizer_without_template.chat_template = None
    fallback = encode.encode_chat(tokenizer_without_template, specials, messages[1:3])
    assert tokenizer.decode(fallback.ids) == "<|im_start|>user\nhi<|im_end|>\n" + (
        "<|im_start|>assistant\nhello<|im_end|>"
    )


def test_truncation_drops_the_start_of_the_prompt():
    e = T.Encoded(list(range(10)), [False] * 7 + [True] * 3)
    assert encode.truncate(e, 5) == T.Encoded([5, 6, 7, 8, 9], [False, False, True, True, True])
    assert encode.truncate(e, 2) == T.Encoded([7, 8], [True, True])
    assert encode.truncate(e, 10) is e


# ---------------------------------------------------------------- loss and metrics


def test_weighted_loss_equals_hand_computation_including_eos_target(
    tiny_model_dir, tokenizer, specials
):
    eos = tokenizer.convert_tokens_to_ids(EOS)
    assert tokenizer.pad_token_id == eos  # the case where masking ids == pad would drop EOS
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    examples = [
        encode.encode_legacy(tokenizer, specials, "Great.\n\n###\n\n", " positive"),
        encode.encode_legacy(
            tokenizer, specials, "It was awful and boring.\n\n###\n\n", " negative"
        ),
    ]
    plw = 0.25
    batch = L.collate(examples, eos, plw)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss, counts = L.loss_and_counts(
        logits, batch["input_ids"], batch["target_weights"], batch["completion_targets"]
    )

    # By hand, example by example (each unpadded), in float64.
    num = den = 0.0
    for e in examples:
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([e.ids])).logits[0].double().log_softmax(-1)
        for j in range(len(e.ids) - 1):
            w = 1.0 if e.completion[j + 1] else plw
            num += w * -logp[j, e.ids[j + 1]].item()
            den += w
    # " positive" / " negative" are one token each, then EOS: 2 completion targets per example.
    assert den == pytest.approx(sum(2 + plw * (len(e.ids) - 3) for e in examples))
    assert loss.item() == pytest.approx(num / den, rel=1e-5)
    assert L.ratios(counts).loss == pytest.approx(loss.item(), rel=1e-6)
    # The EOS target of the shorter, padded row is counted; its padding is not.
    short = len(examples[0].ids)
    assert batch["completion_targets"][0, short - 2] and batch["input_ids"][0, short - 1] == eos
    assert batch["target_weights"][0, short - 2] == 1
    assert batch["target_weights"][0, short - 1 :].sum() == 0

    # A padded batch of one gives exactly that example's own loss.
    alone = L.collate(examples[:1], eos, plw)
    padded = L.collate([examples[0], T.Encoded(examples[0].ids * 3, examples[0].completion * 3)],
                       eos, plw)  # fmt: skip
    l_alone, _ = L.loss_and_counts(
        model(input_ids=alone["input_ids"]).logits, alone["input_ids"],
        alone["target_weights"], alone["completion_targets"],
    )  # fmt: skip
    first_row = {k: v[:1] for k, v in padded.items()}
    l_padded, _ = L.loss_and_counts(
        model(input_ids=first_row["input_ids"], attention_mask=first_row["attention_mask"]).logits,
        first_row["input_ids"], first_row["target_weights"], first_row["completion_targets"],
    )  # fmt: skip
    assert l_padded.item() == pytest.approx(l_alone.item(), rel=1e-6)


def test_sequence_and_token_accuracy_count_completion_targets_only():
    # Vocabulary of 5; each row: 2 prompt tokens then 2 completion tokens (the last one "EOS").
    ids = [[0, 1, 2, 4], [0, 1, 3, 4], [0, 1, 2, 4]]
    examples = [T.Encoded(r, [False, False, True, True]) for r in ids]
    batch = L.collate(examples, pad_id=4, prompt_loss_weight=0.01)
    predicted = [
        [1, 2, 4],  # all right
        [3, 0, 4],  # prompt target wrong (ignored by accuracy), 1st completion target wrong
        [2, 2, 4],  # prompt target wrong only
    ]
    logits = torch.full((3, 4, 5), -10.0)
    for row, preds in enumerate(predicted):
        for j, p in enumerate(preds):
            logits[row, j, p] = 10.0
    _, m = L.loss_and_counts(
        logits, batch["input_ids"], batch["target_weights"], batch["completion_targets"]
    )
    assert L.ratios(m).sequence_accuracy == pytest.approx(2 / 3)
    assert L.ratios(m).token_accuracy == pytest.approx(5 / 6)


# ---------------------------------------------------------------- whole jobs


def test_training_job_learns_and_reports_every_step(tmp_path, tiny_model_dir):
    train = make_sentiment_examples(400, seed=1)
    valid = make_sentiment_examples(40, seed=2)
    held_out = make_sentiment_examples(100, seed=3)
    # lr = 10/3 × 3e-4 = 1e-3, the rate docs/engine.md gives for this tiny model.
    job = make_job(tmp_path / "job", tiny_model_dir, train, valid, seed=5,
                   n_epochs=8, batch_size=16, learning_rate_multiplier=10 / 3)  # fmt: skip
    code, out = finish(start_train(job))
    assert code == 0, out
    rows = progress(job)
    steps_per_epoch = 25
    total = 8 * steps_per_epoch

    assert rows[0] == {
        "type": "hyperparams",
        "n_epochs": 8,
        "batch_size": 16,
        "learning_rate_multiplier": pytest.approx(10 / 3),
        "prompt_loss_weight": 0.01,
        "max_grad_norm": 1.0,
        "micro_batch_size": 16,
        "n_examples": 400,
        "total_steps": total,
        "lora": False,  # a small model: full fine-tuning by default
    }
    assert rows[1]["type"] == "started"
    assert [r["type"] for r in rows[2:]] == (["step"] * steps_per_epoch + ["epoch"]) * 8 + [
        "model_saved"
    ]
    steps = [r for r in rows if r["type"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, total + 1))
    assert all(set(r) >= STEP_KEYS and r["total_steps"] == total for r in steps)
    assert [r["epoch"] for r in steps] == [s // steps_per_epoch + 1 for s in range(total)]
    assert steps[-1]["elapsed_examples"] == 8 * 400
    assert steps[-1]["elapsed_tokens"] == sum(r["tokens"] for r in steps)
    assert [r["epoch"] for r in rows if r["type"] == "epoch"] == list(range(1, 9))
    assert all(r["n_epochs"] == 8 for r in rows if r["type"] == "epoch")
    times = [r["time"] for r in rows[1:]]
    assert times == sorted(times)
    # Validation on a batch now and then, and always on the last step.
    assert "validation_loss" in steps[-1]
    assert 20 <= sum("validation_loss" in r for r in steps) <= 30

    # It learned: training accuracy at the end, and on examples it never saw.
    assert steps[-1]["training_token_accuracy"] == 1.0
    assert steps[-1]["validation_sequence_accuracy"] == 1.0
    assert steps[0]["training_loss"] > steps[-1]["training_loss"]
    # The learning rate each step used: 1e-3, decaying linearly towards 0 after the last step.
    assert [r["learning_rate"] for r in steps] == pytest.approx(
        [1e-3 * (1 - s / total) for s in range(total)], rel=1e-9
    )
    model_dir = Path(rows[-1]["path"])
    assert model_dir == job / "model"
    assert not (job / "model.partial").exists()
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert first_token_accuracy(model_dir, held_out) >= 0.9


def test_same_seed_gives_identical_losses(tmp_path, tiny_model_dir):
    train = make_sentiment_examples(96, seed=7)
    a, b, c = (
        make_job(
            tmp_path / name,
            tiny_model_dir,
            train,
            seed=seed,
            n_epochs=2,
            batch_size=8,
            learning_rate_multiplier=10 / 3,
        )  # fmt: skip
        for name, seed in (("a", 11), ("b", 11), ("c", 12))
    )
    proc = start_train(a)  # one in a fresh process, the others in this one meanwhile
    assert T.run(b) == 0 and T.run(c) == 0
    code, out = finish(proc)
    assert code == 0, out

    def losses(job: Path) -> list[float]:
        return [r["training_loss"] for r in progress(job) if r["type"] == "step"]

    assert len(losses(a)) == 24
    assert losses(a) == losses(b)
    assert losses(a) != losses(c)


def test_chat_examples_train_in_process(tmp_path, tiny_model_dir):
    chats = [
        {"messages": [{"role": "user", "content": e["prompt"]},
                      {"role": "assistant", "content": e["completion"].strip()}]}
        for e in make_sentiment_examples(32, seed=4)
    ]  # fmt: skip
    job = make_job(tmp_path / "chat", tiny_model_dir, chats, n_epochs=1, batch_size=8)
    assert T.run(job) == 0
    rows = progress(job)
    assert rows[0]["batch_size"] == 8 and rows[0]["learning_rate_multiplier"] == 0.1
    steps = [r for r in rows if r["type"] == "step"]
    assert len(steps) == 4 and all(math.isfinite(r["training_loss"]) for r in steps)
    assert rows[-1]["type"] == "model_saved"


def test_missing_base_model_fails_with_a_clear_message(tmp_path):
    job = make_job(tmp_path / "job", "/nonexistent/model-dir", make_sentiment_examples(4, 0))
    code, out = finish(start_train(job))
    assert code == 1
    rows = progress(job)
    assert [r["type"] for r in rows] == ["failed"]  # hyperparams need the model's size
    message = rows[-1]["message"]
    assert "/nonexistent/model-dir" in message and "config.json" in message
    assert "base_models.toml" in message
    assert not (job / "model").exists()


def test_uncached_hub_model_without_network_says_how_to_get_it(tmp_path):
    job = make_job(tmp_path / "job", "example-org/not-a-real-model", make_sentiment_examples(4, 0))
    code, _ = finish(start_train(job, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub")))
    assert code == 1
    message = progress(job)[-1]["message"]
    assert progress(job)[-1]["type"] == "failed"
    assert "example-org/not-a-real-model" in message and "network" in message


def test_unreadable_or_invalid_training_file_fails_clearly(tmp_path, tiny_model_dir):
    job = make_job(tmp_path / "gone", tiny_model_dir, make_sentiment_examples(4, 0))
    (job / "train.jsonl").unlink()
    code, out = finish(start_train(job))
    assert code == 1
    rows = progress(job)
    assert [r["type"] for r in rows] == ["failed"]
    assert rows[0]["message"].startswith(f"Cannot read the training file {job / 'train.jsonl'}")
    assert "Cannot read the training file" in out  # the log says it too

    bad = make_job(tmp_path / "bad", tiny_model_dir, make_sentiment_examples(4, 0))
    with open(bad / "train.jsonl", "a") as f:
        f.write('{"prompt": "x"}\n')
    assert T.run(bad) == 1
    assert "line 5" in progress(bad)[-1]["message"]


def test_saving_replaces_an_older_model_without_leftovers(tmp_path, tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    (tmp_path / "model.partial").mkdir()  # left by a killed attempt
    (tmp_path / "model.partial" / "junk").write_text("x")
    T.save_model(model, tokenizer, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert not (out / "stale.txt").exists()
    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size == model.config.vocab_size


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (json.dumps({"messages": [{"role": "narrator", "content": "x"},
                                  {"role": "assistant", "content": "y"}]}),
         "field messages[0].role is \"narrator\""),
        ('{"prompt": "\\ud800", "completion": " x"}', 'field prompt holds a lone surrogate'),
        ('{"prompt": "a", "completion": " b", "n": NaN}', 'field n is NaN'),
        ('{"messages": [{"role": "assistant", "content": "y"}]}',
         "is in the chat format but earlier lines are in the prompt_completion format"),
    ],
)  # fmt: skip
def test_training_reads_files_by_the_upload_checks_rules(tmp_path, line, why):
    path = write_jsonl(tmp_path / "train.jsonl", make_sentiment_examples(1, 0))
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    with pytest.raises(T.TrainError) as failure:
        T.load_examples(path)
    message = str(failure.value)
    assert message.startswith(f"The training file {path}, line 2 ") and why in message
