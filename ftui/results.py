"""Results rows → metric series for the charts: by step or by epoch, smoothed, downsampled.

The results CSV differs by dialect (``training_loss`` vs ``train_loss``, …) and by options
(validation columns, ``classification/*``); :data:`METRICS` names each metric once with every
column it may appear under. Everything here is plain Python over lists, cheap enough for 100,000
rows, and imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: metric key → (label, columns it may appear under, in order of preference)
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train_loss": ("train loss", ("training_loss", "train_loss")),
    "valid_loss": ("valid loss", ("validation_loss", "valid_loss")),
    "train_token_acc": (
        "train token acc",
        ("training_token_accuracy", "train_accuracy", "train_mean_token_accuracy"),
    ),
    "valid_token_acc": (
        "valid token acc",
        ("validation_token_accuracy", "valid_mean_token_accuracy"),
    ),
    "train_seq_acc": ("train seq acc", ("training_sequence_accuracy",)),
    "valid_seq_acc": ("valid seq acc", ("validation_sequence_accuracy",)),
}

#: The charts of the results screen: chart key → (title, metric keys).
CHARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "loss": ("Loss", ("train_loss", "valid_loss")),
    "accuracy": (
        "Accuracy",
        ("train_token_acc", "valid_token_acc", "train_seq_acc", "valid_seq_acc"),
    ),
}
CLASSIFICATION_PREFIX = "classification/"


@dataclass(frozen=True)
class Series:
    """One line of a chart: ``name`` and its points (x ascending)."""

    name: str
    x: list[float]
    y: list[float]

    def __len__(self) -> int:
        return len(self.x)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        v = float(value)
    else:
        try:
            v = float(str(value))
        except ValueError:
            return None
    return v if math.isfinite(v) else None


class Columns:
    """Rows turned into columns of numbers (None where a cell is empty or not a number), once.

    Charting reads whole columns; doing the per-cell work once per results file keeps a redraw of
    100,000 rows in the tens of milliseconds. Build it off the UI thread for big files.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]]):
        dicts = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in rows]
        names: dict[str, None] = {}
        for d in dicts:
            if d.keys() - names.keys():
                names.update(dict.fromkeys(d))
        self.n = len(dicts)
        self.names = list(names)
        self.values: dict[str, list[float | None]] = {}
        for name in self.names:
            col = [d.get(name) for d in dicts]
            self.values[name] = [
                float(v) if type(v) is int or type(v) is float else _number(v) for v in col
            ]
        self.numeric = {n for n, col in self.values.items() if any(v is not None for v in col)}

    def __len__(self) -> int:
        return self.n

    def get(self, name: str) -> list[float | None] | None:
        return self.values.get(name)


def _columns(rows: Sequence[Mapping[str, Any]] | Columns) -> Columns:
    return rows if isinstance(rows, Columns) else Columns(rows)


def column_of(rows: Sequence[Mapping[str, Any]] | Columns, metric: str) -> str | None:
    """The column that holds ``metric`` (a key of :data:`METRICS` or a column name) in ``rows``."""
    cols = _columns(rows)
    candidates = METRICS[metric][1] if metric in METRICS else (metric,)
    for name in candidates:
        if name in cols.numeric:
            return name
    return None


def classification_columns(rows: Sequence[Mapping[str, Any]] | Columns) -> list[str]:
    """The ``classification/*`` columns that hold numbers, in the order they appear."""
    cols = _columns(rows)
    return [c for c in cols.names if c.startswith(CLASSIFICATION_PREFIX) and c in cols.numeric]


def x_values(
    rows: Sequence[Mapping[str, Any]] | Columns, by: str = "step", n_epochs: int | None = None
) -> list[float] | None:
    """The x coordinate of every row: its step, or its (fractional) epoch.

    By epoch needs the number of epochs: the last row is the end of epoch ``n_epochs``, and
    progress is measured in examples seen where the rows say so (legacy ``elapsed_examples``),
    else in steps. Returns None when epochs cannot be worked out.
    """
    cols = _columns(rows)
    raw_steps = cols.get("step") or [None] * cols.n
    steps = [s if s is not None else float(i + 1) for i, s in enumerate(raw_steps)]
    if by == "step":
        return steps
    if not n_epochs or n_epochs <= 0 or not cols.n:
        return None
    examples = cols.get("elapsed_examples")
    progress = examples if examples and all(e is not None for e in examples) else steps
    last = progress[-1]
    if not last:
        return None
    per_epoch = last / n_epochs
    return [float(p) / per_epoch for p in progress]  # type: ignore[arg-type]


def series(
    rows: Sequence[Mapping[str, Any]] | Columns,
    metric: str,
    *,
    by: str = "step",
    n_epochs: int | None = None,
    name: str | None = None,
) -> Series | None:
    """The points of one metric (rows without a value are skipped); None if it has none."""
    cols = _columns(rows)
    column = column_of(cols, metric)
    if column is None:
        return None
    xs = x_values(cols, by, n_epochs)
    if xs is None:
        return None
    ys = cols.values[column]
    px = [x for x, y in zip(xs, ys, strict=True) if y is not None]
    py = [y for y in ys if y is not None]
    if not px:
        return None
    label = name or (METRICS[metric][0] if metric in METRICS else metric.split("/")[-1])
    return Series(label, px, py)


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard smooths).

    ``weight`` 0 returns the values unchanged; 0.9 averages over about the last ten points.
    The first points are not pulled towards zero: each is divided by ``1 - weight**n``.
    """
    if weight <= 0 or not values:
        return list(values)
    weight = min(weight, 0.999)
    out = []
    last = 0.0
    debias = 1.0
    for v in values:
        last = last * weight + (1 - weight) * v
        debias *= weight
        out.append(last / (1 - debias))
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], buckets: int) -> tuple[list, list]:
    """At most about ``2 * buckets`` points that keep the shape: the lowest and the highest
    point of each of ``buckets`` equal runs of points, in x order. Small series pass through."""
    n = len(xs)
    if buckets <= 0 or n <= 2 * buckets:
        return list(xs), list(ys)
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        lo = b * n // buckets
        hi = (b + 1) * n // buckets
        if hi <= lo:
            continue
        chunk = ys[lo:hi]
        i_min = lo + chunk.index(min(chunk))
        i_max = lo + chunk.index(max(chunk))
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def rows_from_events(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Metric rows from a job's ``metrics`` events (current dialect), for a job still running.

    Each event's ``data`` (``step``, ``train_loss``, ``valid_loss``, …) becomes a row; a step
    seen twice (after a resume) keeps its last values.
    """
    by_step: dict[int, dict[str, Any]] = {}
    for event in events:
        data = getattr(event, "data", None)
        if getattr(event, "type", None) != "metrics" or not isinstance(data, Mapping):
            continue
        step = data.get("step")
        if not isinstance(step, int):
            continue
        by_step[step] = {k: v for k, v in data.items() if k != "total_steps"}
    return [by_step[s] for s in sorted(by_step)]


def available_charts(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The chart keys that have data in ``rows`` (``classification`` included when present)."""
    out = [key for key, (_t, metrics) in CHARTS.items() if any(column_of(rows, m) for m in metrics)]
    if classification_columns(rows):
        out.append("classification")
    return out
