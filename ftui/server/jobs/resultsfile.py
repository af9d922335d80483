"""The results CSV a finished job attaches, in the columns of the dialect that created it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

LEGACY_COLUMNS = (
    "step",
    "elapsed_tokens",
    "elapsed_examples",
    "training_loss",
    "training_sequence_accuracy",
    "training_token_accuracy",
)
LEGACY_VALIDATION_COLUMNS = (
    "validation_loss",
    "validation_sequence_accuracy",
    "validation_token_accuracy",
)
CURRENT_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
)
# Current-API names for the values the trainer reports under legacy names: the one mapping,
# used by the results file, the metrics events and the checkpoints' metrics.
CURRENT_FROM_LEGACY = {
    "train_loss": "training_loss",
    "train_accuracy": "training_token_accuracy",
    "train_mean_token_accuracy": "training_token_accuracy",
    "valid_loss": "validation_loss",
    "valid_mean_token_accuracy": "validation_token_accuracy",
}
# What a metrics event and a checkpoint report (checkpoints add full_valid_* of their own).
EVENT_METRICS = ("train_loss", "train_mean_token_accuracy")
EVENT_VALIDATION_METRICS = ("valid_loss", "valid_mean_token_accuracy")
LEGACY_FILENAME = "compiled_results.csv"
CURRENT_FILENAME = "step_metrics.csv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def current_metrics(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``names`` (current-API metric names) read from a row that has legacy names."""
    return {name: row.get(CURRENT_FROM_LEGACY.get(name, name)) for name in names}


def legacy_columns(rows: list[dict[str, Any]], with_validation: bool) -> list[str]:
    columns = list(LEGACY_COLUMNS)
    if with_validation:
        columns += LEGACY_VALIDATION_COLUMNS
    # Classification metrics appear only when computed, in the order they were first reported.
    for row in rows:
        for key in row:
            if key.startswith("classification/") and key not in columns:
                columns.append(key)
    return columns


def render(rows: Iterable[dict[str, Any]], dialect: str, with_validation: bool) -> bytes:
    rows = list(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if dialect == "legacy":
        columns = legacy_columns(rows, with_validation)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(_cell(row.get(c)) for c in columns)
    else:
        writer.writerow(CURRENT_COLUMNS)
        for row in rows:
            writer.writerow(_cell(row.get(CURRENT_FROM_LEGACY.get(c, c))) for c in CURRENT_COLUMNS)
    return out.getvalue().encode()


def filename(dialect: str) -> str:
    return LEGACY_FILENAME if dialect == "legacy" else CURRENT_FILENAME
