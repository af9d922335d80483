"""The checks of prompt/completion data, in the legacy tool's order (``CHECKS``).

Each check is one of the legacy tool's validators, or one of ours placed where it belongs among
them; it reads and extends one ``Analysis``. Like the legacy tool, every check looks at the data
after the necessary fixes and before any optional one. Unlike it, rows are named by their place
in the input, decisions about rows are kept as sets of rows (so ``apply`` drops exactly the rows a
finding named, whatever was dropped before), and values that are not strings are reported instead
of turned into Python reprs.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from . import _text, _tokens
from ._checks import (
    ENDINGS,
    FALLBACK_ENDING,
    FALLBACK_SEPARATOR,
    FEW_EXAMPLES,
    GUIDE,
    LONG_SUFFIX,
    MAX_CHARS,
    MAX_PROMPT_PREFIX,
    MAX_VALID_EXAMPLES,
    MIN_COMPLETION_PREFIX,
    NA_STRINGS,
    SEPARATORS,
    SHOW_CLASSES,
    STOP,
    PCState,
    finish,
    over_context,
    pick,
    plural,
    report,
    rows_text,
    split_sizes,
    token_finding,
    token_stats,
)
from ._model import (
    CLASSIFICATION,
    CONDITIONAL,
    ERROR,
    INFO,
    NECESSARY,
    OPEN_ENDED,
    OPTIONAL,
    PROMPT_COMPLETION,
    WARNING,
    Finding,
    Report,
    TokenStats,
)
from ._read import Table


def infer_task_type(
    prompts: Sequence[str], completions: Sequence[str], distinct: int | None = None
) -> str:
    """The legacy rule: empty prompts → open-ended; fewer than n/3 distinct completions →
    classification; else conditional generation."""
    if not any(prompts):
        return OPEN_ENDED
    if distinct is None:
        distinct = len(set(completions))
    if distinct < len(completions) / 3:
        return CLASSIFICATION
    return CONDITIONAL


@dataclass
class Analysis:
    """What the checks share. Positions index ``prompts``/``completions``; ``locs`` maps them to
    the input's own rows. Fields are filled in as the checks run, in the order listed."""

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


def analyze(table: Table, tok: _tokens.Tokenization) -> Report:
    a = Analysis(table, tok, list(table.notes))
    for check in CHECKS:
        if check(a) is STOP:
            break
    return a.report()


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


def task_type(a: Analysis) -> None:
    """Open-ended, classification or conditional generation, as the legacy tool infers it."""
    import numpy as np

    prompts, completions = a.prompts, a.completions
    n = len(prompts)
    # Distinct completions, counted by hash: a collision can only lower the count, so when the
    # count reaches n/3 this is not classification; below that they are counted exactly.
    a.completion_hashes = np.fromiter(map(hash, completions), dtype=np.int64, count=n)
    n_distinct = _text.count_distinct(a.completion_hashes)
    # A few labels: one string object per class, and the checks below look at each label once.
    if n_distinct * 3 < n:
        a.labels = set(completions)
        n_distinct = len(a.labels)
        a.completions = completions = _text.share(completions, a.labels)
    a.state = PCState(prompts, completions, a.locs, n_distinct=n_distinct)
    a.task = infer_task_type(prompts, completions, n_distinct)
    if a.task != CLASSIFICATION:
        return
    a.add(
        Finding(
            "classification",
            INFO,
            "Based on your data it seems like you're trying to fine-tune a model for"
            " classification\n- For classification, we recommend you try one of the faster"
            " and cheaper models, such as `ada`\n- For classification, you can estimate the"
            " expected model performance by keeping a held out dataset, which is not used for"
            " training",
        )
    )
    a.classes = dict(Counter(completions).most_common())
    a.add(_class_balance(a.classes, n))


def _class_balance(classes: dict[str, int], n: int) -> Finding:
    items = list(classes.items())
    parts = [f"`{_text.show(k)}` {v / n:.1%} ({v:,})" for k, v in items[:SHOW_CLASSES]]
    msg = f"{len(items):,} classes: {', '.join(parts)}"
    if len(items) > SHOW_CLASSES:
        msg += f", … and {len(items) - SHOW_CLASSES:,} more"
    kind = INFO
    if len(items) > 1 and items[-1][1] * 10 < items[0][1]:
        kind = WARNING
        msg += (
            f"\n  The rarest class has under a tenth of the examples of the most common one;"
            f" consider adding examples of `{_text.show(items[-1][0])}` or balancing the classes"
        )
    return Finding("class_balance", kind, msg, details={"classes": len(items)})


def duplicates(a: Analysis) -> None:
    dups = _text.duplicate_positions(a.prompts, a.completions, a.completion_hashes)
    a.completion_hashes = None
    if not dups:
        return
    rows = a.rows(dups)
    a.state.drops["duplicates"] = dups
    a.add(
        Finding(
            "duplicates",
            OPTIONAL,
            f"There are {len(dups):,} duplicated prompt-completion sets. These are rows:"
            f" {rows_text(a.unit, rows)}",
            f"Remove {plural(len(dups), 'duplicate row')}",
            rows=rows,
        )
    )


def long_examples(a: Analysis) -> None:
    """Over MAX_CHARS characters, prompt and completion together (the legacy tool's measure)."""
    import numpy as np

    n = len(a.prompts)
    total = np.fromiter(map(len, a.prompts), dtype=np.int64, count=n)
    total += np.fromiter(map(len, a.completions), dtype=np.int64, count=n)
    a.char_counts = total
    if a.task == OPEN_ENDED or int(total.max()) <= MAX_CHARS:
        return
    long = np.flatnonzero(total > MAX_CHARS).tolist()
    if not long:
        return
    rows = a.rows(long)
    a.state.drops["long_examples"] = long
    a.add(
        Finding(
            "long_examples",
            OPTIONAL,
            f"There are {len(long):,} examples that are very long (over"
            f" {MAX_CHARS:,} characters). These are rows: {rows_text(a.unit, rows)}\nFor"
            " conditional generation, and for classification the examples shouldn't be"
            f" longer than {a.tok.context:,} tokens.",
            f"Remove {plural(len(long), 'long example')}",
            rows=rows,
        )
    )


def token_counts(a: Analysis) -> None:
    """Tokens per example, and those longer than the model's context window."""
    import numpy as np

    tok = a.tok
    if tok.count is None:
        counts = _tokens.estimate(a.char_counts)
    else:
        counts = np.add(tok.count(a.prompts), tok.count(a.completions))
    a.char_counts = None
    a.stats, over = token_stats(counts, tok)
    del counts
    a.add(token_finding(a.stats))
    if over:
        a.add(over_context(over, a.locs, a.unit, a.stats, a.state.drops))


def _lowercase(a: Analysis, name: str) -> None:
    """Too many capitals in the column ``name`` (its character profile also serves the checks
    after this one)."""
    if name == "prompt":
        prof = _text.profile(a.prompts, "".join(SEPARATORS) + "\n")
    else:  # the characters of the likely endings only: each one never seen costs a scan
        prof = _text.profile(a.completions, "".join(ENDINGS[:4]), labels=a.labels)
    a.profiles[name] = prof
    a.state.specials |= prof.specials
    upper, lower = prof.upper, prof.lower
    if upper * 2 > lower:
        a.add(
            Finding(
                f"lowercase_{name}",
                OPTIONAL,
                f"More than a third of your `{name}` column/key is uppercase ({upper:,}"
                f" uppercase and {lower:,} lowercase letters). Uppercase {name}s tends to"
                " perform worse than a mixture of case encountered in normal language. We"
                " recommend to lower case the data if that makes sense in your domain. See"
                f" {GUIDE} for more details",
                f"Lowercase all your data in column/key `{name}`",
                details={"upper": upper, "lower": lower},
            )
        )


def lowercase_prompt(a: Analysis) -> None:
    _lowercase(a, "prompt")


def lowercase_completion(a: Analysis) -> None:
    _lowercase(a, "completion")


def prompt_separator(a: Analysis) -> bool | None:
    """A common suffix ending every prompt, or the separator to add; identical prompts stop."""
    prompts, state = a.prompts, a.state
    n = len(prompts)
    a.prompt_prefix = prefix = _text.common_prefix(prompts)
    if a.task == OPEN_ENDED:
        return None
    newline = "\n" in a.profiles["prompt"].present
    separator = _text.first_absent(
        prompts, SEPARATORS, a.profiles["prompt"], lambda s: s == " ->" and newline
    )
    separator = separator or FALLBACK_SEPARATOR
    suffix = _text.common_suffix(prompts) if n > 1 else ""
    if n > 1 and _text.all_equal(prompts, prefix):
        a.add(
            Finding(
                "identical_prompts",
                ERROR,
                f"All prompts are identical: `{_text.show(prompts[0])}`\nConsider leaving the"
                " prompts blank if you want to do open-ended generation, otherwise ensure"
                " prompts are different",
            )
        )
        return STOP
    if suffix:
        a.findings += _suffix_findings("prompt", suffix, separator, prompts, a.locs, a.unit)
        return None
    state.separator = separator
    a.add(
        Finding(
            "separator",
            OPTIONAL,
            "Your data does not contain a common separator at the end of your prompts."
            " Having a separator string appended to the end of the prompt makes it clearer"
            " to the fine-tuned model where the completion should begin. See"
            f" {GUIDE} for more detail and examples. If you intend to do open-ended"
            " generation, then you should leave the prompts empty",
            f"Add a suffix separator `{_text.show(separator)}` to all prompts",
            details={"separator": separator},
        )
    )
    return None


def prompt_prefix(a: Analysis) -> None:
    prefix = a.prompt_prefix
    if not prefix or _text.all_equal(a.prompts, prefix):
        return
    msg = f"All prompts start with prefix `{_text.show(prefix)}`"
    if len(prefix) <= MAX_PROMPT_PREFIX:
        a.add(Finding("prompt_prefix", INFO, msg, details={"prefix": prefix}))
        return
    a.state.prompt_prefix = prefix
    msg += (
        ". Fine-tuning doesn't require the instruction specifying the task, or a few-shot"
        " example scenario. Most of the time you should only add the input data into the"
        " prompt, and the desired output into the completion"
    )
    a.add(
        Finding(
            "prompt_prefix",
            OPTIONAL,
            msg,
            f"Remove prefix `{_text.show(prefix)}` from all prompts",
            details={"prefix": prefix},
        )
    )


def completion_prefix(a: Analysis) -> None:
    each = a.distinct_completions
    a.completion_prefix = cprefix = _text.common_prefix(list(each))
    if len(cprefix) < MIN_COMPLETION_PREFIX or len(set(each)) <= 1:
        return
    a.state.completion_prefix = cprefix
    emptied = [i for i, c in enumerate(a.completions) if c == cprefix]
    msg = (
        f"All completions start with prefix `{_text.show(cprefix)}`. Most of the time you"
        " should only add the output data into the completion, without any prefix"
    )
    if emptied:
        msg += (
            f"\n  WARNING: {plural(len(emptied), 'completion')} would be left empty by this"
            f" and would be removed: {rows_text(a.unit, a.rows(emptied))}"
        )
    a.add(
        Finding(
            "completion_prefix",
            OPTIONAL,
            msg,
            f"Remove prefix `{_text.show(cprefix)}` from all completions",
            rows=a.rows(emptied),
            details={"prefix": cprefix, "emptied": len(emptied)},
        )
    )


def completion_ending(a: Analysis) -> bool | None:
    """Conditional generation only: a common ending, or the one to add; identical completions
    stop."""
    if a.task != CONDITIONAL:
        return None
    completions = a.completions
    n = len(completions)
    if n > 1 and _text.all_equal(completions, a.completion_prefix):
        x = _text.show(completions[0])
        a.add(
            Finding(
                "identical_completions",
                ERROR,
                f"All completions are identical: `{x}`\nEnsure completions are different,"
                f" otherwise the model will just repeat `{x}`",
            )
        )
        return STOP
    ending = _text.first_absent(completions, ENDINGS, a.profiles["completion"], lambda e: False)
    ending = ending or FALLBACK_ENDING
    csuffix = _text.common_suffix(completions) if n > 1 else ""
    if csuffix:
        a.findings += _suffix_findings("completion", csuffix, ending, completions, a.locs, a.unit)
        return None
    a.state.ending = ending
    a.add(
        Finding(
            "ending",
            OPTIONAL,
            "Your data does not contain a common ending at the end of your completions."
            " Having a common ending string appended to the end of the completion makes it"
            " clearer to the fine-tuned model where the completion should end. See"
            f" {GUIDE} for more detail and examples.",
            f"Add a suffix ending `{_text.show(ending)}` to all completions",
            details={"ending": ending},
        )
    )
    return None


def _suffix_findings(
    name: str, suffix: str, suggestion: str, values: list[str], locs: Sequence[int], unit: str
) -> list[Finding]:
    plural_name = f"{name}s"
    msg = f"All {plural_name} end with suffix `{_text.show(suffix)}`"
    if len(suffix) > LONG_SUFFIX:
        msg += (
            ". This suffix seems very long. Consider replacing with a shorter suffix, such as"
            f" `{_text.show(suggestion)}`"
        )
    out = [Finding(f"{name}_suffix", INFO, msg, details={"suffix": suffix})]
    cut = len(suffix)
    repeated = [i for i, v in enumerate(values) if suffix in v[:-cut]]
    if repeated:
        rows = pick(locs, repeated)
        out.append(
            Finding(
                f"{name}_suffix_repeated",
                WARNING,
                f"Some of your {plural_name} contain the suffix `{_text.show(suffix)}` more than"
                f" once ({rows_text(unit, rows)}). We strongly suggest that you review your"
                f" {plural_name} and add a unique suffix",
                rows=rows,
            )
        )
    return out


def leading_space(a: Analysis) -> None:
    each = a.distinct_completions
    a.state.any_spaced = not _text.none_start_with(each, " ")
    if not _text.all_start_with(each, " "):
        a.add(
            Finding(
                "leading_space",
                OPTIONAL,
                "The completion should start with a whitespace character (` `). This tends to"
                f" produce better results due to the tokenization we use. See {GUIDE} for more"
                " details",
                "Add a whitespace character to the beginning of the completion",
            )
        )


def validation_split(a: Analysis) -> None:
    n = len(a.prompts)
    if a.task != CLASSIFICATION or n <= 1:
        return
    n_train, n_valid = split_sizes(n)
    a.add(
        Finding(
            "split",
            OPTIONAL,
            "For classification, a held-out validation set lets the fine-tune report"
            f" classification metrics: {n_valid:,} examples"
            f" ({'20%' if n_valid < MAX_VALID_EXAMPLES else 'at most 1,000'}) would be held"
            " out, chosen at random (seed 42)",
            "Split into training and validation sets",
            details={"n_train": n_train, "n_valid": n_valid},
        )
    )


# The legacy tool's validators, in its order, with ours where they belong.
CHECKS: list[Check] = [
    count_examples,  # num_examples
    prompt_column,  # necessary_column("prompt")
    completion_column,  # necessary_column("completion")
    extra_columns,  # additional_column
    non_text_values,  # (the legacy tool turned these into text or crashed)
    empty_completions,  # non_empty_field
    examples_left,  # the necessary removals are applied here, as the legacy tool did
    task_type,  # format_inferrer
    duplicates,  # duplicated_rows
    long_examples,  # long_examples
    token_counts,  # (the legacy tool only advised a token limit)
    lowercase_prompt,  # lower_case("prompt")
    lowercase_completion,  # lower_case("completion")
    prompt_separator,  # common_prompt_suffix
    prompt_prefix,  # common_prompt_prefix
    completion_prefix,  # common_completion_prefix
    completion_ending,  # common_completion_suffix
    leading_space,  # completions_space_start
    validation_split,  # the legacy tool asked about the split after its checks
]
