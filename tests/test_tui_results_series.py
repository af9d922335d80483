"""ftui.results (rows → series: columns of both dialects, step/epoch, EMA, downsampling) and the
chart and event-log widgets' pure parts, checked against values worked out by hand."""

from __future__ import annotations

import random

import pytest

from ftui.results import (
    available_charts,
    classification_columns,
    downsample,
    ema,
    rows_from_events,
    series,
    x_values,
)
from ftui.types import JobEvent, ResultRow
from ftui.widgets.chart import Line, _Plot, render_chart
from ftui.widgets.event_log import MAX_LINE_LENGTH, format_event

LEGACY = [
    ResultRow.from_csv(
        {
            "step": str(s),
            "elapsed_tokens": str(100 * s),
            "elapsed_examples": str(4 * s),
            "training_loss": str(2.0 / s),
            "training_sequence_accuracy": "0.5",
            "training_token_accuracy": "0.75",
            "validation_loss": "1.5" if s % 2 == 0 else "",
            "classification/accuracy": "0.9" if s == 4 else "",
            "classification/f1.0": "0.8" if s == 4 else "",
        }
    )
    for s in range(1, 5)
]
CURRENT = [
    {"step": 1, "train_loss": 3.0, "train_accuracy": 0.1, "valid_loss": None},
    {"step": 2, "train_loss": 2.0, "train_accuracy": 0.2, "valid_loss": 2.5},
]


def test_columns_of_both_dialects():
    s = series(LEGACY, "train_loss")
    assert s.x == [1, 2, 3, 4] and s.y == [2.0, 1.0, 2.0 / 3, 0.5]
    assert series(LEGACY, "valid_loss").x == [2, 4]  # empty cells skipped
    assert series(CURRENT, "train_loss").y == [3.0, 2.0]
    assert series(CURRENT, "train_token_acc").y == [0.1, 0.2]
    assert series(CURRENT, "valid_loss").x == [2]
    assert series(CURRENT, "train_seq_acc") is None
    assert classification_columns(LEGACY) == ["classification/accuracy", "classification/f1.0"]
    assert available_charts(LEGACY) == ["loss", "accuracy", "classification"]
    assert available_charts(CURRENT) == ["loss", "accuracy"]


def test_x_by_epoch_uses_examples_seen_or_steps():
    # legacy rows: 16 examples seen over 2 epochs → 8 per epoch
    assert x_values(LEGACY, "epoch", n_epochs=2) == [0.5, 1.0, 1.5, 2.0]
    assert x_values(CURRENT, "epoch", n_epochs=1) == [0.5, 1.0]
    assert x_values(CURRENT, "epoch", n_epochs=None) is None
    assert series(CURRENT, "train_loss", by="epoch") is None


def test_ema_matches_hand_computation():
    assert ema([1.0, 2.0, 3.0], 0) == [1.0, 2.0, 3.0]
    out = ema([1.0, 3.0], 0.5)
    # debiased: 0.5/(1-0.5) = 1; (0.25 + 1.5)/(1-0.25) = 7/3
    assert out == pytest.approx([1.0, 7 / 3])
    assert ema([5.0] * 50, 0.99) == pytest.approx([5.0] * 50)  # no pull towards zero


def test_downsample_keeps_extremes_and_order():
    rng = random.Random(1)
    ys = [rng.random() for _ in range(10_000)]
    ys[1234] = 50.0
    ys[8765] = -50.0
    xs = list(range(len(ys)))
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) <= 200 and dx == sorted(dx)
    assert 50.0 in dy and -50.0 in dy
    assert all(ys[x] == y for x, y in zip(dx, dy, strict=True))
    assert downsample([1, 2, 3], [4, 5, 6], 100) == ([1, 2, 3], [4, 5, 6])


def test_rows_from_metric_events():
    events = [
        JobEvent(
            created_at=1,
            message="x",
            type="metrics",
            data={"step": 2, "train_loss": 1.0, "total_steps": 9},
        ),
        JobEvent(created_at=1, message="x", type="metrics", data={"step": 1, "train_loss": 2.0}),
        JobEvent(created_at=1, message="started"),
        JobEvent(created_at=1, message="x", type="metrics", data={"step": 2, "train_loss": 0.9}),
    ]
    assert rows_from_events(events) == [
        {"step": 1, "train_loss": 2.0},
        {"step": 2, "train_loss": 0.9},
    ]


def test_chart_says_when_there_is_too_little_to_draw():
    text = render_chart(_Plot([Line("train", [1], [2.0])], "Loss"), 60, 12, "Not enough data")
    assert "Not enough data (1 point so far)" in text.plain
    text = render_chart(_Plot([], "Loss"), 60, 12, "Not enough data")
    assert "(0 points so far)" in text.plain


def test_chart_draws_a_sized_plot_with_a_legend():
    xs = list(range(1, 101))
    plot = _Plot(
        [
            Line("train", xs, [1 / x for x in xs], 0, "raw", legend=False),
            Line("train", xs, ema([1 / x for x in xs], 0.6), 0, "smooth"),
            Line("valid", xs[::10], [1.2 / x for x in xs[::10]], 1),
        ],
        "Loss",
        log_y=True,
    )
    lines = render_chart(plot, 70, 15, "").plain.split("\n")
    assert len(lines) == 15 and max(len(ln) for ln in lines) <= 70
    assert "Loss" in lines[0]
    assert lines[-1].startswith("x: step") and "━━ train" in lines[-1]
    assert lines[-1].count("━━") == 2  # the faint raw line is not repeated in the legend
    assert any("⠁" <= ch <= "⣿" for ch in "".join(lines))  # braille points were drawn


def test_event_lines_mark_levels_and_are_truncated():
    assert format_event(JobEvent(created_at=0, message="a\nb")) == " " * 19 + "  a ⏎ b"
    assert "  ✖ boom" in format_event(JobEvent(created_at=1, message="boom", level="error"))
    assert "  ! hmm" in format_event(JobEvent(created_at=1, message="hmm", level="warn"))
    long = format_event(JobEvent(created_at=1, message="x" * 5000))
    assert len(long) == MAX_LINE_LENGTH and long.endswith("…")
