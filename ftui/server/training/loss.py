"""The batch tensors and the loss with its metrics (legacy semantics).

Per target position: weight 1 for completion targets, ``prompt_loss_weight`` for prompt targets
(0 for the untrained tokens of chat examples: only trained assistant replies count), 0 for
padding; loss = Σ w·ce / Σ w. Sums are returned beside the loss so that micro-batches and
validation batches can be pooled exactly. Masks come from lengths, never from ``ids == pad_id``:
pad and end of text share an id in many tokenizers. torch is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftui.server.training.encode import Encoded
from ftui.server.training.progress import Metrics

if TYPE_CHECKING:
    import torch


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
        untrained = prompt_loss_weight if e.prompt_loss else 0.0  # chat: untrained weighs 0
        target_weights[row, : n - 1] = torch.where(is_completion, 1.0, untrained)
    tensors = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "target_weights": target_weights,
        "completion_targets": completion_targets,
    }
    return {k: v.to(device) for k, v in tensors.items()}


def loss_and_counts(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    target_weights: torch.Tensor,
    completion_targets: torch.Tensor,
    total_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The differentiable loss Σ w·ce / Σ w, and the sums that the metrics are ratios of (so
    several batches can be pooled): Σ w·ce, Σ w, right / all completion targets, right / all
    rows. ``total_weight``: the Σ w to divide by when this is one micro-batch of a larger batch
    (default: this batch's own)."""
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
    divisor = weight if total_weight is None else total_weight
    loss = weighted / divisor.clamp_min(1e-12)
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


def add_counts(total: dict[str, float], counts: dict[str, float]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0.0) + v


def ratios(c: dict[str, float]) -> Metrics:
    return Metrics(
        loss=c["weighted"] / max(c["weight"], 1e-12),
        sequence_accuracy=c["rows_right"] / max(c["rows"], 1),
        token_accuracy=c["tokens_right"] / max(c["tokens"], 1),
    )


def chunks(indices: list[int], size: int) -> list[list[int]]:
    """``indices`` cut into pieces of ``size`` (the last may be shorter): batches into
    micro-batches, a sorted validation set into batches."""
    return [indices[k : k + size] for k in range(0, len(indices), size)]
