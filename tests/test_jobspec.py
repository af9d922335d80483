"""The runner ↔ training-process contract: spec.json, the progress rows and the event wording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftui import dialects
from ftui.server.jobs import events
from ftui.server.training import progress
from ftui.server.training.jobspec import (
    ClassificationOptions,
    Hyperparameters,
    JobSpec,
    TrainError,
)
from ftui.server.training.progress import Metrics


def full_spec(tmp_path: Path) -> JobSpec:
    return JobSpec(
        training_file=str(tmp_path / "t.jsonl"),
        output_dir=tmp_path / "model",
        data_dir=str(tmp_path),
        job_id="ftjob-1",
        dialect="current",
        base_model="ada",
        base_model_path=tmp_path / "base",
        validation_file=str(tmp_path / "v.jsonl"),
        hyperparams=Hyperparameters(n_epochs=2, micro_batch_size=4, max_grad_norm=0.0),
        lora=True,
        classification=ClassificationOptions(n_classes=2, positive_class=" yes", betas=[0.5]),
        validation_every=3,
        checkpoints_dir=tmp_path / "ck",
        resume_from=tmp_path / "ck" / "step-0000003",
        seed=9,
        device="cpu",
        threads=2,
        concurrent_jobs=3,
    )


def test_spec_round_trips_through_its_json(tmp_path):
    spec = full_spec(tmp_path)
    (tmp_path / "spec.json").write_bytes(spec.dumps())
    assert JobSpec.read(tmp_path) == spec
    # The wire shape the training process has always read.
    data = json.loads(spec.dumps())
    assert data["checkpoints"] == {"dir": str(tmp_path / "ck")}
    assert data["hyperparams"]["micro_batch_size"] == 4


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"training_file": None}, "has no 'training_file'"),
        ({"seed": "7"}, "'seed' must be a whole number"),
        ({"lora": "yes"}, "'lora' must be true, false or null"),
        ({"threads": 0}, "'threads' must be a positive whole number"),
        ({"dialect": "beta"}, "'dialect' must be 'legacy' or 'current'"),
        ({"checkpoints": "/x"}, "'checkpoints' must be"),
        ({"hyperparams": {"epochs": 2}}, "unknown key 'epochs'"),
        ({"surprise": 1}, "unknown key 'surprise'"),
        ({"classification": {"betas": "2"}}, "classification_betas"),
    ],
)
def test_a_bad_spec_fails_naming_the_key(tmp_path, change, needle):
    data = {**full_spec(tmp_path).to_json(), **change}
    with pytest.raises(TrainError, match=needle):
        JobSpec.from_json(data)


def test_defaults_come_from_the_shared_dialect_rules():
    hp = Hyperparameters().resolve(1_000_000, "legacy")
    assert hp.n_epochs == dialects.LEGACY_DEFAULT_N_EPOCHS
    assert Hyperparameters().resolve(10, "current").n_epochs == dialects.CURRENT_AUTO_N_EPOCHS
    assert hp.batch_size == dialects.MAX_BATCH_SIZE == dialects.LIMITS["batch_size"].hi
    assert hp.max_grad_norm == dialects.DEFAULT_MAX_GRAD_NORM


ROWS: list[progress.Row] = [
    progress.Hyperparams({"n_epochs": 2, "batch_size": 4}, 10, 6, False),
    progress.Started(time=1.0),
    progress.Resumed(3, time=2.0),
    progress.Step(5, 2, 6, 100, 20, Metrics(1.5, 0.25, 0.5), 1e-4, 30, 2.5, time=3.0),
    progress.Step(
        6,
        2,
        6,
        130,
        24,
        Metrics(1.25, 0.5, 0.75),
        5e-5,
        30,
        None,
        validation=Metrics(1.0, 0.5, 0.5),
        classification={"classification/accuracy": 0.5, "classification/auroc": None},
        time=4.0,
    ),  # fmt: skip
    progress.Epoch(2, 2, time=5.0),
    progress.Checkpoint(6, 2, "/ck/step-0000006", {"step": 6, "train_loss": 1.25}, time=6.0),
    progress.ModelSaved("/model", time=7.0),
    progress.Paused(4, "/ck/step-0000004", time=8.0),
    progress.Failed("disk full", "storage_full"),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.TYPE)
def test_progress_rows_round_trip_as_flat_json(tmp_path, row):
    writer = progress.ProgressWriter(tmp_path / "progress.jsonl")
    writer.write(row)
    writer.close()
    [(_, decoded)] = progress.read(tmp_path / "progress.jsonl", 0)
    assert decoded == row
    line = json.loads((tmp_path / "progress.jsonl").read_text())
    assert line["type"] == row.TYPE and all(not isinstance(v, dict) for k, v in line.items()
                                            if k not in ("metrics",))  # fmt: skip


def test_step_rows_use_the_legacy_names_and_unknown_rows_are_skipped():
    row = ROWS[4].encode()
    assert list(row)[:4] == ["type", "step", "epoch", "total_steps"]
    assert row["training_loss"] == 1.25 and row["validation_token_accuracy"] == 0.5
    assert [k for k in row if k.startswith("classification/")] == [
        "classification/accuracy",
        "classification/auroc",
    ]
    assert "validation_loss" not in ROWS[3].encode()  # present exactly when validated
    assert progress.decode({"type": "gossip"}) is None
    assert progress.decode({"type": "paused", "path": "/x"}) is None  # no step


def test_every_event_has_wording_or_silence_in_both_dialects():
    for kind, by_dialect in events.MESSAGES.items():
        assert set(by_dialect) == {"legacy", "current"}, kind
        assert any(by_dialect.values()), kind
    assert events.wording("epoch", "legacy", epoch=1, n_epochs=2) == ("Completed epoch 1/2", "info")
    assert events.wording("epoch", "current", epoch=1, n_epochs=2) is None
    assert events.wording("failed", "current", reason="x") == ("Fine-tuning job failed: x", "error")
