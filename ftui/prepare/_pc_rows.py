"""Prompt/completion checks, part 1: the columns and the rows. Which columns hold the prompt and
the completion, which values are text, and which rows are left once the necessary fixes have
removed the unusable ones. ``Analysis`` is the state that all prompt/completion checks share; the
order they run in is ``_prompt_completion.CHECKS``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from . import _text, _tokens
from ._checks import (
    FEW_EXAMPLES,
    NA_STRINGS,
    STOP,
    PCState,
    finish,
    pick,
    plural,
    report,
    rows_text,
)
from ._model import (
    ERROR,
    INFO,
    NECESSARY,
    PROMPT_COMPLETION,
    WARNING,
    Finding,
    Report,
    TokenStats,
)
from ._read import Table


@dataclass
class Analysis:
    """What the prompt/completion checks share. Positions index ``prompts``/``completions``;
    ``locs`` maps them to the input's own rows. Fields are filled in as the checks run, in the
    order listed."""

    table: Table
    tok: _tokens.Tokenization
    findings: list[Finding]
    used: dict[str, str] = field(default_factory=dict)  # "prompt"/"completion" -> its column
    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    locs: Sequence[int] = ()
    unusable: set[int] = field(default_factory=set)  # positions the necessary fixes remove
    state: PCState | None = None  # made once the rows to keep are known; what apply reads
    task: str | None = None
    labels: set[str] | None = None  # the distinct completions, when they are a few classes
    classes: dict[str, int] | None = None
    completion_hashes: Any = None  # numpy array, from the task check to the duplicates check
    char_counts: Any = None  # numpy array, from the long-examples check to the token check
    stats: TokenStats | None = None
    profiles: dict[str, _text.Profile] = field(default_factory=dict)
    prompt_prefix: str = ""
    completion_prefix: str = ""

    @property
    def unit(self) -> str:
        return self.table.unit

    @property
    def distinct_completions(self) -> Sequence[str] | set[str]:
        """Each completion once per label for classification data, else every completion."""
        return self.labels if self.labels is not None else self.completions

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def rows(self, positions: Sequence[int]) -> tuple[int, ...]:
        return pick(self.locs, positions)

    def report(self) -> Report:
        if self.state is None:
            return report(self.table, PROMPT_COMPLETION, self.findings)
        return finish(self.table, self.findings, self.state, self.task, self.classes, self.stats)


Check = Callable[[Analysis], bool | None]


# ---------------------------------------------------------------- values


def _as_text(value: Any, fmt: str) -> str | None:
    """Text for a number, boolean or date; None for arrays, objects and anything else."""
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if fmt == "xlsx" else ("true" if value else "false")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if fmt == "xlsx" and value.is_integer():
            return str(int(value))
        return json.dumps(value) if math.isfinite(value) else None
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    return None


@dataclass
class _Cleaned:
    values: list[str]
    missing: list[int]
    converted: list[int]
    invalid: list[int]


def _clean(values: list[Any], fmt: str) -> _Cleaned:
    """Strings as they are; missing → ""; numbers/booleans/dates → text; the rest invalid."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return _Cleaned(values, [], [], [])
    out = list(values)
    missing, converted, invalid = [], [], []
    for i, v in enumerate(values):
        if type(v) is str:  # noqa: E721
            continue
        if v is None:
            out[i] = ""
            missing.append(i)
            continue
        text = _as_text(v, fmt)
        if text is None:
            out[i] = ""
            invalid.append(i)
        else:
            out[i] = text
            converted.append(i)
    return _Cleaned(out, missing, converted, invalid)


# ---------------------------------------------------------------- the checks, in order


def count_examples(a: Analysis) -> None:
    n = len(a.table)
    msg = f"Your file contains {n:,} prompt-completion pairs"
    if n < FEW_EXAMPLES:
        msg += (
            ". In general, we recommend having at least a few hundred examples. We've found that"
            " performance tends to linearly increase for every doubling of the number of examples"
        )
    a.add(Finding("count", INFO, msg, details={"n": n}))


def _necessary_column(a: Analysis, name: str) -> None:
    """The column named ``name``, accepting another case as a necessary fix."""
    columns = a.table.columns
    if name in columns:
        a.used[name] = name
        return
    alt = next((c for c in columns if c.lower() == name), None)
    if alt is None:
        found = ", ".join(f"`{c}`" for c in columns) or "none"
        a.add(
            Finding(
                f"missing_{name}",
                ERROR,
                f"`{name}` column/key is missing (columns/keys found: {found}). Please make"
                " sure you name your columns/keys appropriately, then retry",
                details={"columns": columns},
            )
        )
        return
    a.used[name] = alt
    a.add(
        Finding(
            f"{name}_column_case",
            NECESSARY,
            f"The `{name}` column/key should be lowercase: `{alt}` is used as `{name}`",
            f"Lower case column name `{alt}` to `{name}`",
            details={"column": alt},
        )
    )


def prompt_column(a: Analysis) -> None:
    _necessary_column(a, "prompt")


def completion_column(a: Analysis) -> bool | None:
    _necessary_column(a, "completion")
    return STOP if len(a.used) < 2 else None  # both missing columns are reported first


def extra_columns(a: Analysis) -> None:
    use = a.used
    extra = [c for c in a.table.columns if c not in use.values()]
    if not extra:
        return
    msg = (
        "The input file should contain exactly two columns/keys per row. Additional"
        f" columns/keys present are: {', '.join(f'`{c}`' for c in extra)}"
    )
    for c in extra:
        if c.lower() in use:
            msg += (
                f"\n  WARNING: `{c}` is another spelling of `{c.lower()}` and is ignored;"
                f" `{use[c.lower()]}` is used"
            )
    a.add(
        Finding(
            "extra_columns",
            NECESSARY,
            msg,
            f"Remove additional columns/keys: {', '.join(extra)}",
            details={"columns": extra},
        )
    )


def non_text_values(a: Analysis) -> None:
    """Numbers, booleans and dates become text; arrays and objects remove their row."""
    table, unit = a.table, a.unit
    a.locs = locs = table.locs
    fmt = table.format
    pc = _clean(table.data.pop(a.used["prompt"]), fmt)
    cc = _clean(table.data.pop(a.used["completion"]), fmt)
    table.data.clear()  # the other columns' values are not needed any more
    a.prompts, a.completions = pc.values, cc.values
    converted = sorted(set(pc.converted) | set(cc.converted))
    if converted:
        a.add(
            Finding(
                "non_string",
                NECESSARY,
                f"{plural(len(converted), 'row')} hold numbers, booleans or dates where text is"
                f" expected ({len(pc.converted):,} prompts, {len(cc.converted):,} completions):"
                f" {rows_text(unit, pick(locs, converted))}",
                f"Convert {plural(len(pc.converted) + len(cc.converted), 'value')} to text",
                rows=pick(locs, converted),
            )
        )
    invalid = sorted(set(pc.invalid) | set(cc.invalid))
    if invalid:
        a.add(
            Finding(
                "invalid_values",
                NECESSARY,
                f"{plural(len(invalid), 'row')} hold an array, an object or another non-text"
                f" value as prompt or completion: {rows_text(unit, pick(locs, invalid))}",
                f"Remove {plural(len(invalid), 'row')} whose prompt or completion is not text",
                rows=pick(locs, invalid),
            )
        )
    a.unusable.update(invalid)
    broken = sorted(
        set(_text.surrogate_positions(a.prompts)) | set(_text.surrogate_positions(a.completions))
    )
    if broken:
        a.add(
            Finding(
                "invalid_text",
                NECESSARY,
                f"{plural(len(broken), 'row')} hold a lone surrogate (an unpaired \\ud800–\\udfff"
                " escape), which is not Unicode text and is refused at upload:"
                f" {rows_text(unit, pick(locs, broken))}",
                f"Remove {plural(len(broken), 'row')} whose text is not valid Unicode",
                rows=pick(locs, broken),
            )
        )
        a.unusable.update(broken)
    if pc.missing and table.typed and fmt != "xlsx":
        a.add(
            Finding(
                "missing_prompt_values",
                INFO,
                f"{plural(len(pc.missing), 'prompt')} {'is' if len(pc.missing) == 1 else 'are'}"
                f" null or missing and treated as empty: "
                f"{rows_text(unit, pick(locs, pc.missing))}",
                rows=pick(locs, pc.missing),
            )
        )


def empty_completions(a: Analysis) -> None:
    """Empty completions remove their row; blank ones and pandas' missing-value words stay."""
    completions, unit = a.completions, a.unit
    empty = []
    if "" in completions:
        invalid = a.unusable
        empty = [
            i
            for i in compress(range(len(completions)), map(operator.not_, completions))
            if i not in invalid
        ]
    if empty:
        rows = a.rows(empty)
        a.add(
            Finding(
                "empty_completion",
                NECESSARY,
                f"`completion` column/key should not contain empty strings: {len(empty):,}"
                f" {'is' if len(empty) == 1 else 'are'} empty or missing: {rows_text(unit, rows)}",
                f"Remove {plural(len(empty), 'row')} with empty completions",
                rows=rows,
            )
        )
        a.unusable.update(empty)
    blank = []
    if True in map(str.isspace, completions):
        blank = [i for i, c in enumerate(completions) if c.isspace()]
    if blank:
        rows = a.rows(blank)
        a.add(
            Finding(
                "blank_completion",
                WARNING,
                f"{plural(len(blank), 'completion')} {'is' if len(blank) == 1 else 'are'} only"
                f" whitespace (kept): {rows_text(unit, rows)}",
                rows=rows,
            )
        )
    if a.table.blank_is_missing and not NA_STRINGS.isdisjoint(completions):
        na = [i for i, c in enumerate(completions) if c in NA_STRINGS]
        if na:
            rows = a.rows(na)
            a.add(
                Finding(
                    "na_strings",
                    INFO,
                    f"{plural(len(na), 'completion')} {'is' if len(na) == 1 else 'are'}"
                    f" literally {', '.join(sorted({f'`{completions[i]}`' for i in na}))}: kept"
                    f" as text (pandas-based tools read these as missing and drop the rows):"
                    f" {rows_text(unit, rows)}",
                    rows=rows,
                )
            )


def examples_left(a: Analysis) -> bool | None:
    """Apply the necessary removals; stop when no example is left."""
    if a.unusable:
        gone = sorted(a.unusable)
        a.prompts = _text.drop_positions(a.prompts, gone)
        a.completions = _text.drop_positions(a.completions, gone)
        a.locs = _text.drop_positions(a.locs, gone)
    if len(a.prompts) == 0:
        a.add(
            Finding(
                "no_examples",
                ERROR,
                "No examples are left: every row has an empty or unusable completion",
            )
        )
        return STOP
    return None
