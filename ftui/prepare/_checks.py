"""What the checks of both schemas share: the legacy tool's thresholds, how a finding names rows,
token statistics, the report, and the states ``apply`` reads.

A check is a small function run in a fixed order over one shared analysis state (as the legacy
tool's validators were): it appends its findings, records in the state what later checks and
``apply`` need, and returns ``STOP`` when nothing after it can be checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _tokens
from ._model import INFO, OPTIONAL, PROMPT_COMPLETION, WARNING, Finding, Report, TokenStats
from ._read import Table

# Thresholds of the legacy tool.
FEW_EXAMPLES = 100
MAX_CHARS = 10_000
MAX_PROMPT_PREFIX = 12
MIN_COMPLETION_PREFIX = 5
LONG_SUFFIX = 10
MAX_VALID_EXAMPLES = 1000
TRAIN_FRACTION = 0.8
SPLIT_SEED = 42
SEPARATORS = [" ->", "\n\n###\n\n", "\n\n===\n\n", "\n\n---\n\n", "\n\n===>\n\n", "\n\n--->\n\n"]
FALLBACK_SEPARATOR = "\n\n### =>\n\n"
ENDINGS = ["\n", ".", " END", "***", "+++", "&&&", "$$$", "@@@", "%%%"]
FALLBACK_ENDING = " [END]"
GUIDE = "https://platform.openai.com/docs/guides/fine-tuning/preparing-your-dataset"
# Strings that pandas-based readers (the legacy tool among them) turn into missing values.
NA_STRINGS = frozenset(
    ["NA", "N/A", "n/a", "null", "NULL", "NaN", "nan", "-nan", "#N/A", "<NA>", "1.#IND", "None"]
)
SHOW_ROWS = 10
SHOW_CLASSES = 10

STOP = True  # what a check returns when the analysis ends with it


@dataclass
class PCState:
    """What ``apply`` needs for prompt/completion data (positions are after necessary fixes)."""

    prompts: list[str]
    completions: list[str]
    locs: Sequence[int]
    drops: dict[str, list[int]] = field(default_factory=dict)  # finding id -> positions
    separator: str | None = None
    prompt_prefix: str | None = None
    completion_prefix: str | None = None
    ending: str | None = None
    specials: set[str] = field(default_factory=set)  # characters JSON must escape
    n_distinct: int = 0  # distinct completions
    any_spaced: bool = True  # some completion starts with a space


@dataclass
class ChatState:
    examples: list[dict]  # the chat lines: messages, and tools etc. where a row has them
    locs: Sequence[int]
    drops: dict[str, list[int]] = field(default_factory=dict)


# ---------------------------------------------------------------- naming rows


def rows_text(unit: str, rows: Sequence[int], cap: int = SHOW_ROWS) -> str:
    if not rows:
        return ""
    plural = {"line": "lines", "row": "rows", "record": "records", "index": "indices"}[unit]
    shown = ", ".join(str(r) for r in rows[:cap])
    if len(rows) == 1:
        return f"{unit} {shown}"
    if len(rows) > cap:
        return f"{plural} {shown}, … ({len(rows):,} in all)"
    return f"{plural} {shown}"


def pick(locs: Sequence[int], positions: Sequence[int]) -> tuple[int, ...]:
    """The input's own locations of rows given by their positions after necessary fixes."""
    return tuple(int(locs[i]) for i in positions)


def plural(k: int, word: str, words: str | None = None) -> str:
    return f"{k:,} {word if k == 1 else (words or word + 's')}"


def split_sizes(n: int) -> tuple[int, int]:
    n_train = max(n - MAX_VALID_EXAMPLES, int(n * TRAIN_FRACTION))
    return n_train, n - n_train


# ---------------------------------------------------------------- the report


def report(table: Table, schema: str, findings: list[Finding], **kw: Any) -> Report:
    """A report without examples to write (the analysis stopped before any state was made)."""
    return Report(
        path=table.path,
        format=table.format,
        schema=schema,
        unit=table.unit,
        n_records=len(table),
        findings=findings,
        **{"n_examples": 0, "task_type": None, **kw},
    )


def finish(
    table: Table,
    findings: list[Finding],
    state: Any,
    task: str | None,
    classes: dict[str, int] | None,
    stats: TokenStats | None,
    schema: str = PROMPT_COMPLETION,
) -> Report:
    """The report of an analysis that got as far as making ``state``, which ``apply`` reads."""
    n = len(state.locs)
    return report(
        table,
        schema,
        findings,
        n_examples=n,
        task_type=task,
        tokens=stats,
        classes=classes,
        _state=state,
    )


# ---------------------------------------------------------------- tokens


def token_stats(counts: Any, tok: _tokens.Tokenization) -> tuple[TokenStats, list[int]]:
    """Statistics of the tokens per example, and the positions of those over the context."""
    import numpy as np

    n = len(counts)
    arr = np.asarray(counts, dtype=np.int64)
    top = int(arr.max()) if n else 0
    over = np.flatnonzero(arr > tok.context).tolist() if top > tok.context else []
    total = int(arr.sum())
    p50, p95 = (int(x) for x in np.percentile(arr, [50, 95], method="nearest")) if n else (0, 0)
    stats = TokenStats(
        method="estimate" if tok.count is None else "tokenizer",
        source=tok.source,
        total=total,
        mean=total / n if n else 0.0,
        p50=p50,
        p95=p95,
        max=top,
        context=tok.context,
        context_source=tok.context_source,
        over_context=len(over),
    )
    return stats, over


def token_finding(stats: TokenStats) -> Finding:
    how = (
        f"counted with {stats.source}"
        if stats.exact
        else "estimated as characters/4; name the base model to count them exactly"
    )
    return Finding(
        "tokens",
        INFO,
        f"Tokens per example ({how}): mean {stats.mean:,.1f}, median {stats.p50:,}, 95th"
        f" percentile {stats.p95:,}, max {stats.max:,}; {stats.total:,} in total",
        details=stats.to_dict(),
    )


def over_context(
    over: list[int],
    locs: Sequence[int],
    unit: str,
    stats: TokenStats,
    drops: dict[str, list[int]],
) -> Finding:
    """Examples longer than the context: a fix when counted exactly, a warning when estimated."""
    rows = pick(locs, over)
    ctx = f"the context window of {stats.context:,} tokens ({stats.context_source})"
    if stats.exact:
        drops["over_context"] = over
        return Finding(
            "over_context",
            OPTIONAL,
            f"{plural(len(over), 'example')} {'is' if len(over) == 1 else 'are'} longer than"
            f" {ctx} and would be truncated in training: {rows_text(unit, rows)}",
            f"Remove {plural(len(over), 'example')} longer than the context window",
            rows=rows,
            details={"context": stats.context},
        )
    return Finding(
        "over_context",
        WARNING,
        f"{plural(len(over), 'example')} may be longer than {ctx}, by the characters/4"
        f" estimate: {rows_text(unit, rows)}",
        rows=rows,
        details={"context": stats.context},
    )
