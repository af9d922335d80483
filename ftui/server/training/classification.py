"""Classification metrics for fine-tunes of classifiers (legacy ``compute_classification_metrics``).

Each validation example's completion is its class label. A prediction comes from the first
completion token: the model's log-probabilities at the end of the prompt, restricted to the first
tokens of the class labels. The metric maths is plain numpy (scikit-learn would add ~200 MB and
seconds of import for ~60 lines; docs/engine.md: these formulas matched it to 3e-16):

- accuracy: fraction of examples whose predicted label is the true one;
- weighted F1 (multiclass): per-class F1 weighted by the class's number of true examples, over
  the classes that occur in the truth or the predictions (as scikit-learn's ``average="weighted"``);
- binary, for the positive class: precision, recall and F-beta from the counts (0 where a
  denominator is 0, as scikit-learn's ``zero_division=0``); AUROC as the Mann-Whitney U statistic
  with average ranks for ties; AUPRC as step-wise average precision
  Σ (R_k − R_{k−1}) · P_k over the distinct score thresholds, highest first. Both are None when
  they are undefined (only one class present in the truth).

The binary prediction is positive when the positive class's probability, renormalised over the
class labels' first tokens, is ≥ 0.5.

torch is imported only inside :func:`score_first_tokens`; the rest needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ftui.server.training.jobspec import ClassificationOptions, TrainError

KEY_PREFIX = "classification/"
THRESHOLD = 0.5


class ClassificationError(TrainError):
    """A classification setup that cannot work; the message is meant for the user."""


# ---------------------------------------------------------------- metric maths


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(t == p)) if len(t) else 0.0


def _fbeta_from_counts(tp: float, fp: float, fn: float, beta: float) -> float:
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    return float((1 + b2) * tp / denominator) if denominator > 0 else 0.0


def weighted_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if not len(t):
        return 0.0
    total = 0.0
    for label in np.unique(np.concatenate([t, p])):
        support = np.sum(t == label)
        if support == 0:
            continue  # weight 0: a class that only appears in the predictions
        tp = np.sum((t == label) & (p == label))
        fp = np.sum((t != label) & (p == label))
        fn = np.sum((t == label) & (p != label))
        total += support * _fbeta_from_counts(tp, fp, fn, 1.0)
    return float(total / len(t))


def precision_recall_fbeta(
    truth: Sequence[bool], predicted: Sequence[bool], betas: Sequence[float]
) -> tuple[float, float, list[float]]:
    t, p = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    tp, fp, fn = float(np.sum(t & p)), float(np.sum(~t & p)), float(np.sum(t & ~p))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    return precision, recall, [_fbeta_from_counts(tp, fp, fn, b) for b in betas]


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    t = np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = float(average_ranks(scores)[t].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auprc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    t = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(t.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    # The last index of each run of equal scores: one threshold per distinct score.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(t)[last]
    predicted = last + 1
    precision = tp / predicted
    recall = tp / n_pos
    previous_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - previous_recall) * precision))


def beta_key(beta: float) -> str:
    """``1`` → ``f1.0``, ``0.5`` → ``f0.5``: the legacy column names."""
    return f"f{float(beta)}"


def multiclass_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    return {
        KEY_PREFIX + "accuracy": accuracy(y_true, y_pred),
        KEY_PREFIX + "weighted_f1_score": weighted_f1(y_true, y_pred),
    }


def binary_metrics(
    truth: Sequence[bool], positive_probability: Sequence[float], betas: Sequence[float]
) -> dict[str, float | None]:
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(positive_probability, dtype=np.float64)
    predicted = p >= THRESHOLD
    precision, recall, fbetas = precision_recall_fbeta(t, predicted, betas)
    metrics: dict[str, float | None] = {
        KEY_PREFIX + "accuracy": accuracy(t, predicted),
        KEY_PREFIX + "precision": precision,
        KEY_PREFIX + "recall": recall,
        KEY_PREFIX + "auroc": auroc(t, p),
        KEY_PREFIX + "auprc": auprc(t, p),
    }
    for beta, value in zip(betas, fbetas, strict=True):
        metrics[KEY_PREFIX + beta_key(beta)] = value
    return metrics


# ---------------------------------------------------------------- the job's setup


def _show(label: str) -> str:
    return repr(label)


def _list(labels: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(_show(x) for x in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


class ClassificationSetup:
    """The class labels, their first tokens and what to compute; checked at job start."""

    def __init__(
        self,
        options: ClassificationOptions,
        train: list[dict],
        valid: list[dict] | None,
    ) -> None:
        if not valid:
            raise ClassificationError(
                "Classification metrics are computed on the validation set: give a "
                "validation_file, or turn compute_classification_metrics off."
            )
        if any("completion" not in e for e in [*train, *valid]):
            raise ClassificationError(
                "Classification metrics need prompt/completion examples (the completion is the "
                "class label); these files contain chat examples."
            )
        self.labels = sorted({e["completion"] for e in [*valid, *train]})
        n_classes, positive, betas = options.n_classes, options.positive_class, options.betas
        self.betas = [1.0] if betas is None else [float(b) for b in betas]
        if betas is not None and (
            not self.betas or any(not np.isfinite(b) or b <= 0 for b in self.betas)
        ):
            raise ClassificationError(
                f"classification_betas must be a list of positive numbers; got {betas!r}."
            )
        if len(self.labels) < 2:
            raise ClassificationError(
                "Classification metrics need at least two classes, but every completion in the "
                f"training and validation files is {_show(self.labels[0])}."
            )
        if n_classes is not None and n_classes != len(self.labels):
            raise ClassificationError(
                f"classification_n_classes is {n_classes}, but the training and validation "
                f"files have {len(self.labels)} distinct completions (class labels): "
                f"{_list(self.labels)}."
            )
        if positive is not None and positive not in self.labels:
            hint = ""
            if positive.strip() in {x.strip() for x in self.labels}:
                hint = " (mind the leading space: the label is the completion exactly)"
            raise ClassificationError(
                f"classification_positive_class {_show(positive)} is not one of the class labels "
                f"(the distinct completions): {_list(self.labels)}{hint}."
            )
        self.positive = positive
        self.valid = valid
        self.token_ids: list[int] = []

    @property
    def binary(self) -> bool:
        return self.positive is not None

    def bind_tokenizer(self, tokenizer: Any, eos_id: int) -> None:
        """Each label's first token (EOS for an empty label, which is what training teaches);
        refuse labels that share a first token: they cannot be told apart from it."""
        firsts: list[int] = []
        for label in self.labels:
            ids = list(tokenizer(label, add_special_tokens=False)["input_ids"]) if label else []
            firsts.append((ids or [eos_id])[0])
        by_token: dict[int, list[str]] = {}
        for label, token in zip(self.labels, firsts, strict=True):
            by_token.setdefault(token, []).append(label)
        clashes = [(t, labels) for t, labels in by_token.items() if len(labels) > 1]
        if clashes:
            parts = [
                f"{_list(labels)} all start with token {tokenizer.convert_ids_to_tokens(t)!r} "
                f"(id {t})"
                for t, labels in clashes[:5]
            ]
            raise ClassificationError(
                "Classification metrics score the first token of each class label, but some "
                f"labels share their first token: {'; '.join(parts)}. Use labels that differ in "
                "their first token, e.g. a leading space and a distinct first word."
            )
        self.token_ids = firsts

    def metrics(self, class_logprobs: np.ndarray) -> dict[str, float | None]:
        """Metrics from an (n_valid, n_classes) array of log-probabilities of the labels' first
        tokens, rows in validation-set order."""
        truth = [e["completion"] for e in self.valid]
        if self.binary:
            lp = np.asarray(class_logprobs, dtype=np.float64)
            lp = lp - lp.max(axis=1, keepdims=True)
            probs = np.exp(lp) / np.exp(lp).sum(axis=1, keepdims=True)
            positive_probability = probs[:, self.labels.index(self.positive)]
            is_positive = [label == self.positive for label in truth]
            return binary_metrics(is_positive, positive_probability, self.betas)
        predicted = [self.labels[i] for i in np.asarray(class_logprobs).argmax(axis=1)]
        return multiclass_metrics(truth, predicted)


def score_first_tokens(
    model: Any,
    prompts: list[list[int]],
    token_ids: list[int],
    pad_id: int,
    device: Any,
    batch_size: int = 16,
) -> np.ndarray:
    """Log-probabilities (n_prompts, len(token_ids)) of each candidate first token after each
    prompt. Left padding with explicit position ids, so the last position is every prompt's end
    (batched and one-by-one agree to 1e-5, docs/engine.md); only the last logits are computed."""
    import torch

    rows: list[np.ndarray] = []
    candidates = torch.tensor(token_ids, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                chunk = prompts[start : start + batch_size]
                width = max(len(p) for p in chunk)
                input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, p in enumerate(chunk):
                    input_ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
                    attention[r, width - len(p) :] = 1
                positions = (attention.cumsum(dim=1) - 1).clamp_min(0)
                logits = model(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    position_ids=positions.to(device),
                    use_cache=False,
                    logits_to_keep=1,
                ).logits[:, -1]
                logprobs = logits.float().log_softmax(dim=-1)[:, candidates]
                rows.append(logprobs.cpu().double().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(rows, axis=0)
