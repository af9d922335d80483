"""Classification metric maths (numpy) against hand-worked numbers, and the job-start checks."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ftui.server.training import classification as C
from ftui.server.training.jobspec import ClassificationOptions as Opts
from tests.tiny_model import build_tokenizer

# ---------------------------------------------------------------- hand-worked cases


def test_average_ranks_share_ties():
    assert C.average_ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert C.average_ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]


def test_auroc_with_a_tie_by_hand():
    # Positives score 0.9, 0.8, 0.4; negatives 0.8, 0.3. Of the 6 (positive, negative) pairs
    # the positive wins 4 and ties 1 (0.8 vs 0.8, counted ½): AUROC = 4.5 / 6.
    truth = [True, True, True, False, False]
    scores = [0.9, 0.8, 0.4, 0.8, 0.3]
    assert C.auroc(truth, scores) == pytest.approx(0.75, abs=1e-15)
    assert C.auroc([True, False], [0.2, 0.7]) == 0.0
    assert C.auroc([True, True], [0.2, 0.7]) is None  # one class only: undefined


def test_auprc_is_step_wise_average_precision_by_hand():
    # Thresholds from the top: 0.9 → P 1/1, R 1/3; 0.8 (a positive and a negative tie) →
    # P 2/3, R 2/3; 0.4 → P 3/4, R 1; 0.3 → R unchanged. AP = ⅓·1 + ⅓·⅔ + ⅓·¾ = 29/36.
    truth = [True, True, True, False, False]
    scores = [0.9, 0.8, 0.4, 0.8, 0.3]
    assert C.auprc(truth, scores) == pytest.approx(29 / 36, abs=1e-15)
    # A tie between the top positive and a negative: one threshold, P ½ at R 1.
    assert C.auprc([True, False], [0.5, 0.5]) == pytest.approx(0.5)
    assert C.auprc([False, False], [0.1, 0.2]) is None


def test_precision_recall_and_two_betas_by_hand():
    truth = [True, True, True, False, False]
    predicted = [True, False, False, True, False]  # tp 1, fp 1, fn 2
    precision, recall, (f05, f1, f2) = C.precision_recall_fbeta(truth, predicted, [0.5, 1, 2])
    assert (precision, recall) == (0.5, pytest.approx(1 / 3))
    # F_β = (1+β²)·tp / ((1+β²)·tp + β²·fn + fp)
    assert f05 == pytest.approx(1.25 / (1.25 + 0.25 * 2 + 1))  # 5/11
    assert f1 == pytest.approx(0.4)
    assert f2 == pytest.approx(5 / 14)
    # Nothing predicted positive: precision 0 (not a division by zero), F 0.
    assert C.precision_recall_fbeta([True, False], [False, False], [1.0]) == (0.0, 0.0, [0.0])


def test_weighted_f1_by_hand():
    # a: tp 2, fn 1 → F1 0.8 (support 3); b: tp 1, fp 1, fn 1 → 0.5 (2); c: tp 1, fp 1 → ⅔ (1).
    truth = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    assert C.weighted_f1(truth, predicted) == pytest.approx(61 / 90, abs=1e-15)
    assert C.accuracy(truth, predicted) == pytest.approx(4 / 6)
    # A class that is only predicted has weight 0; a class never predicted has F1 0.
    assert C.weighted_f1(["a", "b"], ["a", "d"]) == pytest.approx(0.5)


def test_binary_metrics_keys_in_legacy_column_order():
    metrics = C.binary_metrics(
        [True, True, True, False, False], [0.9, 0.8, 0.4, 0.8, 0.3], betas=[1.0, 0.5]
    )
    assert list(metrics) == [
        "classification/accuracy",
        "classification/precision",
        "classification/recall",
        "classification/auroc",
        "classification/auprc",
        "classification/f1.0",
        "classification/f0.5",
    ]
    # Threshold 0.5: predicted [T, T, F, T, F] → tp 2, fp 1, fn 1, tn 1.
    assert metrics["classification/accuracy"] == pytest.approx(3 / 5)
    assert metrics["classification/precision"] == pytest.approx(2 / 3)
    assert metrics["classification/recall"] == pytest.approx(2 / 3)
    assert metrics["classification/auroc"] == pytest.approx(0.75)
    assert metrics["classification/auprc"] == pytest.approx(29 / 36)
    assert metrics["classification/f1.0"] == pytest.approx(2 / 3)
    assert [C.beta_key(b) for b in (1, 0.5, 2, 1.5)] == ["f1.0", "f0.5", "f2.0", "f1.5"]


# ---------------------------------------------------------------- against definitions


def _pairwise_auroc(truth: list[bool], scores: list[float]) -> float:
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _mean_precision_at_positives(truth: list[bool], scores: list[float]) -> float:
    # Average precision = mean over positives of the precision at that positive's score
    # (everything scoring at least as high counts as predicted positive).
    values = []
    for s_i, t_i in zip(scores, truth, strict=True):
        if t_i:
            above = [t for s, t in zip(scores, truth, strict=True) if s >= s_i]
            values.append(sum(above) / len(above))
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", range(40))
def test_auroc_and_auprc_match_their_definitions_on_random_tied_data(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 30)
    truth = [rng.random() < 0.4 for _ in range(n)]
    truth[0], truth[1] = True, False
    scores = [round(rng.random(), 1) for _ in range(n)]  # one decimal: many ties
    assert C.auroc(truth, scores) == pytest.approx(_pairwise_auroc(truth, scores), abs=1e-12)
    assert C.auprc(truth, scores) == pytest.approx(
        _mean_precision_at_positives(truth, scores), abs=1e-12
    )


# ---------------------------------------------------------------- the job's setup


def _examples(labels: list[str]) -> list[dict]:
    return [{"prompt": f"text {i}\n\n###\n\n", "completion": c} for i, c in enumerate(labels)]


def test_setup_takes_labels_from_both_files_and_renormalises_the_positive_class():
    train = _examples([" positive", " negative", " positive"])
    valid = _examples([" negative", " positive"])
    setup = C.ClassificationSetup(Opts(positive_class=" positive", betas=[2]), train, valid)
    assert setup.labels == [" negative", " positive"] and setup.binary
    setup.bind_tokenizer(build_tokenizer(), eos_id=2)
    assert len(set(setup.token_ids)) == 2
    # Rows: validation examples; columns: labels in sorted order (" negative", " positive").
    # Renormalised over the two labels: p(positive) = 0.3 / (0.3 + 0.1) = 0.75 and 0.2.
    logprobs = np.log([[0.1, 0.3], [0.4, 0.1]])
    metrics = setup.metrics(logprobs)
    # Truth: [negative, positive]; predicted positive for row 0 only: all wrong.
    assert metrics["classification/accuracy"] == 0.0
    assert metrics["classification/auroc"] == 0.0
    assert metrics["classification/f2.0"] == 0.0
    multi = C.ClassificationSetup(Opts(n_classes=2), train, valid)
    assert multi.metrics(logprobs) == {
        "classification/accuracy": 0.0,
        "classification/weighted_f1_score": 0.0,
    }


@pytest.mark.parametrize(
    ("options", "labels", "valid", "needle"),
    [
        ({"n_classes": 3}, [" a", " b"], True, "classification_n_classes is 3"),
        ({"positive_class": "positive"}, [" positive", " negative"], True, "leading space"),
        ({"positive_class": " yes"}, [" positive", " negative"], True, "not one of"),
        ({}, [" positive", " negative"], False, "validation_file"),
        ({}, [" positive", " positive"], True, "at least two classes"),
        ({"betas": [-1]}, [" positive", " negative"], True, "positive numbers"),
    ],
)
def test_bad_setups_are_refused_with_a_clear_message(options, labels, valid, needle):
    examples = _examples(labels)
    with pytest.raises(C.ClassificationError, match=needle) as info:
        C.ClassificationSetup(Opts(**options), examples, examples if valid else None)
    if "n_classes" in options:
        assert "' a', ' b'" in str(info.value)  # it names the labels it found


def test_labels_sharing_a_first_token_are_refused_naming_them_and_the_token():
    examples = _examples([" 1", " 0", " positive", " positively"])
    setup = C.ClassificationSetup(Opts(), examples, examples)
    with pytest.raises(C.ClassificationError) as info:
        setup.bind_tokenizer(build_tokenizer(), eos_id=2)
    message = str(info.value)
    assert "' 0', ' 1' all start with token 'Ġ'" in message
    assert "' positive', ' positively' all start with token 'Ġpositive'" in message


def test_chat_examples_cannot_be_classified():
    chat = [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    with pytest.raises(C.ClassificationError, match="prompt/completion"):
        C.ClassificationSetup(Opts(), chat, _examples([" a", " b"]))


def test_metric_values_are_finite_numbers_or_none():
    metrics = C.binary_metrics([True, True], [0.9, 0.1], [1.0])
    assert metrics["classification/auroc"] is None and metrics["classification/auprc"] == 1.0
    assert all(v is None or math.isfinite(v) for v in metrics.values())
