"""The checks, in the legacy tool's order, with its thresholds and its necessary/optional split.

Like the legacy tool, every check looks at the data after the necessary fixes and before any
optional one. Unlike it, rows are named by their place in the input, decisions about rows are
kept as sets of rows (so ``apply`` drops exactly the rows a finding named, whatever was dropped
before), and values that are not strings are reported instead of turned into Python reprs.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import operator
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from . import _text, _tokens
from ._model import (
    CHAT,
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
from ._read import Table, read

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
    messages: list[list[dict]]
    locs: Sequence[int]
    drops: dict[str, list[int]] = field(default_factory=dict)


# ---------------------------------------------------------------- shared helpers


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


def _pick(locs: Sequence[int], positions: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(locs[i]) for i in positions)


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


def split_sizes(n: int) -> tuple[int, int]:
    n_train = max(n - MAX_VALID_EXAMPLES, int(n * TRAIN_FRACTION))
    return n_train, n - n_train


def _plural(k: int, word: str, words: str | None = None) -> str:
    return f"{k:,} {word if k == 1 else (words or word + 's')}"


# ---------------------------------------------------------------- entry point


def analyze(
    source: Any,
    *,
    model: str | None = None,
    tokenizer: Any = None,
    context: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Report:
    """Read ``source`` (a path or a pandas DataFrame) and run every check.

    ``model`` names the base model (a legacy name such as ``ada``, an alias from the server's
    table, a Hugging Face id in the local cache, or a local directory): its tokenizer is used for
    token counts when it is on this machine, and its context window for the over-length check.
    ``tokenizer`` (a ``tokenizers.Tokenizer``, a transformers tokenizer, or a function from a list
    of strings to their token counts) and ``context`` override that. Without them tokens are
    estimated as characters / 4. Raises ``PrepareError`` when the input cannot be read; every
    other problem is a finding of the returned report.
    """
    table = read(source)
    tok = _tokens.resolve(model, tokenizer, context, data_dir)
    lowered = {c.lower() for c in table.columns}
    if "messages" in lowered and not lowered & {"prompt", "completion"}:
        report = _analyze_chat(table, tok)
    else:
        report = _analyze_pc(table, tok)
    report.model = model
    if tok.note and model:
        report.findings.append(
            Finding(
                "tokenizer",
                INFO,
                f"Token counts are estimates: {tok.note}",
                details={"model": model},
            )
        )
    return report


def _report(table: Table, schema: str, findings: list[Finding], **kw: Any) -> Report:
    return Report(
        path=table.path,
        format=table.format,
        schema=schema,
        unit=table.unit,
        n_records=len(table),
        findings=findings,
        **{"n_examples": 0, "task_type": None, **kw},
    )


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


# ---------------------------------------------------------------- prompt / completion


def _analyze_pc(table: Table, tok: _tokens.Tokenization) -> Report:
    findings = list(table.notes)
    unit = table.unit
    n = len(table)
    msg = f"Your file contains {n:,} prompt-completion pairs"
    if n < FEW_EXAMPLES:
        msg += (
            ". In general, we recommend having at least a few hundred examples. We've found that"
            " performance tends to linearly increase for every doubling of the number of examples"
        )
    findings.append(Finding("count", INFO, msg, details={"n": n}))

    # -- necessary columns, their case, extra columns
    columns = table.columns
    use: dict[str, str] = {}
    for name in ("prompt", "completion"):
        if name in columns:
            use[name] = name
            continue
        alt = next((c for c in columns if c.lower() == name), None)
        if alt is None:
            found = ", ".join(f"`{c}`" for c in columns) or "none"
            findings.append(
                Finding(
                    f"missing_{name}",
                    ERROR,
                    f"`{name}` column/key is missing (columns/keys found: {found}). Please make"
                    " sure you name your columns/keys appropriately, then retry",
                    details={"columns": columns},
                )
            )
            continue
        use[name] = alt
        findings.append(
            Finding(
                f"{name}_column_case",
                NECESSARY,
                f"The `{name}` column/key should be lowercase: `{alt}` is used as `{name}`",
                f"Lower case column name `{alt}` to `{name}`",
                details={"column": alt},
            )
        )
    if len(use) < 2:
        return _report(table, PROMPT_COMPLETION, findings)
    extra = [c for c in columns if c not in use.values()]
    if extra:
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
        findings.append(
            Finding(
                "extra_columns",
                NECESSARY,
                msg,
                f"Remove additional columns/keys: {', '.join(extra)}",
                details={"columns": extra},
            )
        )

    # -- values that are not strings
    locs = table.locs
    fmt = table.format
    pc = _clean(table.data.pop(use["prompt"]), fmt)
    cc = _clean(table.data.pop(use["completion"]), fmt)
    table.data.clear()
    prompts, completions = pc.values, cc.values
    converted = sorted(set(pc.converted) | set(cc.converted))
    if converted:
        findings.append(
            Finding(
                "non_string",
                NECESSARY,
                f"{_plural(len(converted), 'row')} hold numbers, booleans or dates where text is"
                f" expected ({len(pc.converted):,} prompts, {len(cc.converted):,} completions):"
                f" {rows_text(unit, _pick(locs, converted))}",
                f"Convert {_plural(len(pc.converted) + len(cc.converted), 'value')} to text",
                rows=_pick(locs, converted),
            )
        )
    invalid = sorted(set(pc.invalid) | set(cc.invalid))
    if invalid:
        findings.append(
            Finding(
                "invalid_values",
                NECESSARY,
                f"{_plural(len(invalid), 'row')} hold an array, an object or another non-text"
                f" value as prompt or completion: {rows_text(unit, _pick(locs, invalid))}",
                f"Remove {_plural(len(invalid), 'row')} whose prompt or completion is not text",
                rows=_pick(locs, invalid),
            )
        )
    broken = sorted(
        set(_text.surrogate_positions(prompts)) | set(_text.surrogate_positions(completions))
    )
    if broken:
        findings.append(
            Finding(
                "invalid_text",
                NECESSARY,
                f"{_plural(len(broken), 'row')} hold a lone surrogate (an unpaired \\ud800–\\udfff"
                " escape), which is not Unicode text and is refused at upload:"
                f" {rows_text(unit, _pick(locs, broken))}",
                f"Remove {_plural(len(broken), 'row')} whose text is not valid Unicode",
                rows=_pick(locs, broken),
            )
        )
        invalid = sorted(set(invalid) | set(broken))
    if pc.missing and table.typed and fmt != "xlsx":
        findings.append(
            Finding(
                "missing_prompt_values",
                INFO,
                f"{_plural(len(pc.missing), 'prompt')} {'is' if len(pc.missing) == 1 else 'are'}"
                f" null or missing and treated as empty: "
                f"{rows_text(unit, _pick(locs, pc.missing))}",
                rows=_pick(locs, pc.missing),
            )
        )

    # -- empty completions
    invalid_set = set(invalid)
    empty = []
    if "" in completions:
        empty = [
            i
            for i in compress(range(len(completions)), map(operator.not_, completions))
            if i not in invalid_set
        ]
    if empty:
        rows = _pick(locs, empty)
        findings.append(
            Finding(
                "empty_completion",
                NECESSARY,
                f"`completion` column/key should not contain empty strings: {len(empty):,}"
                f" {'is' if len(empty) == 1 else 'are'} empty or missing: {rows_text(unit, rows)}",
                f"Remove {_plural(len(empty), 'row')} with empty completions",
                rows=rows,
            )
        )
    blank = []
    if True in map(str.isspace, completions):
        blank = [i for i, c in enumerate(completions) if c.isspace()]
    if blank:
        rows = _pick(locs, blank)
        findings.append(
            Finding(
                "blank_completion",
                WARNING,
                f"{_plural(len(blank), 'completion')} {'is' if len(blank) == 1 else 'are'} only"
                f" whitespace (kept): {rows_text(unit, rows)}",
                rows=rows,
            )
        )
    if table.blank_is_missing and not NA_STRINGS.isdisjoint(completions):
        na = [i for i, c in enumerate(completions) if c in NA_STRINGS]
        if na:
            rows = _pick(locs, na)
            findings.append(
                Finding(
                    "na_strings",
                    INFO,
                    f"{_plural(len(na), 'completion')} {'is' if len(na) == 1 else 'are'}"
                    f" literally {', '.join(sorted({f'`{completions[i]}`' for i in na}))}: kept"
                    f" as text (pandas-based tools read these as missing and drop the rows):"
                    f" {rows_text(unit, rows)}",
                    rows=rows,
                )
            )
    gone = sorted(invalid_set | set(empty))
    if gone:
        prompts = _text.drop_positions(prompts, gone)
        completions = _text.drop_positions(completions, gone)
        locs = _text.drop_positions(locs, gone)
    n = len(prompts)
    if n == 0:
        findings.append(
            Finding(
                "no_examples",
                ERROR,
                "No examples are left: every row has an empty or unusable completion",
            )
        )
        return _report(table, PROMPT_COMPLETION, findings)

    # Distinct completions, counted by hash: a collision can only lower the count, so when the
    # count reaches n/3 this is not classification; below that they are counted exactly.
    import numpy as np

    completion_hashes = np.fromiter(map(hash, completions), dtype=np.int64, count=n)
    n_distinct = _text.count_distinct(completion_hashes)
    # A few labels: one string object per class, and the checks below look at each label once.
    labels: set[str] | None = None
    if n_distinct * 3 < n:
        labels = set(completions)
        n_distinct = len(labels)
        completions = _text.share(completions, labels)
    state = PCState(prompts, completions, locs, n_distinct=n_distinct)
    task = infer_task_type(prompts, completions, n_distinct)
    each_completion = labels if labels is not None else completions
    classes = None
    if task == CLASSIFICATION:
        findings.append(
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
        counts = Counter(completions)
        classes = dict(counts.most_common())
        findings.append(_class_balance(classes, n))

    # -- duplicates
    dups = _text.duplicate_positions(prompts, completions, completion_hashes)
    del completion_hashes
    if dups:
        rows = _pick(locs, dups)
        state.drops["duplicates"] = dups
        findings.append(
            Finding(
                "duplicates",
                OPTIONAL,
                f"There are {len(dups):,} duplicated prompt-completion sets. These are rows:"
                f" {rows_text(unit, rows)}",
                f"Remove {_plural(len(dups), 'duplicate row')}",
                rows=rows,
            )
        )

    # -- long examples (characters, as the legacy tool) and tokens
    import numpy as np

    total = np.fromiter(map(len, prompts), dtype=np.int64, count=n)
    total += np.fromiter(map(len, completions), dtype=np.int64, count=n)
    if task != OPEN_ENDED and int(total.max()) > MAX_CHARS:
        long = np.flatnonzero(total > MAX_CHARS).tolist()
        if long:
            rows = _pick(locs, long)
            state.drops["long_examples"] = long
            findings.append(
                Finding(
                    "long_examples",
                    OPTIONAL,
                    f"There are {len(long):,} examples that are very long (over"
                    f" {MAX_CHARS:,} characters). These are rows: {rows_text(unit, rows)}\nFor"
                    " conditional generation, and for classification the examples shouldn't be"
                    f" longer than {tok.context:,} tokens.",
                    f"Remove {_plural(len(long), 'long example')}",
                    rows=rows,
                )
            )
    if tok.count is None:
        counts_tok = _tokens.estimate(total)
    else:
        pt = tok.count(prompts)
        ct = tok.count(completions)
        counts_tok = np.add(pt, ct)
    del total
    stats, over = _token_stats(counts_tok, tok)
    del counts_tok
    findings.append(_token_finding(stats))
    if over:
        findings.append(_over_context(over, locs, unit, stats, state.drops))

    # -- case
    profiles = {
        "prompt": _text.profile(prompts, "".join(SEPARATORS) + "\n"),
        # the characters of the likely endings only: each one never seen costs a scan
        "completion": _text.profile(completions, "".join(ENDINGS[:4]), labels=labels),
    }
    state.specials = profiles["prompt"].specials | profiles["completion"].specials
    for name, prof in profiles.items():
        upper, lower = prof.upper, prof.lower
        if upper * 2 > lower:
            findings.append(
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

    # -- prompt separator
    prefix = _text.common_prefix(prompts)
    if task != OPEN_ENDED:
        newline = "\n" in profiles["prompt"].present
        separator = _text.first_absent(
            prompts, SEPARATORS, profiles["prompt"], lambda s: s == " ->" and newline
        )
        separator = separator or FALLBACK_SEPARATOR
        suffix = _text.common_suffix(prompts) if n > 1 else ""
        if n > 1 and _text.all_equal(prompts, prefix):
            findings.append(
                Finding(
                    "identical_prompts",
                    ERROR,
                    f"All prompts are identical: `{_text.show(prompts[0])}`\nConsider leaving the"
                    " prompts blank if you want to do open-ended generation, otherwise ensure"
                    " prompts are different",
                )
            )
            return _finish(table, findings, state, task, classes, stats)
        if suffix:
            findings += _suffix_findings("prompt", suffix, separator, prompts, locs, unit)
        else:
            state.separator = separator
            findings.append(
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

    # -- prompt prefix
    if prefix and not _text.all_equal(prompts, prefix):
        msg = f"All prompts start with prefix `{_text.show(prefix)}`"
        if len(prefix) > MAX_PROMPT_PREFIX:
            state.prompt_prefix = prefix
            msg += (
                ". Fine-tuning doesn't require the instruction specifying the task, or a few-shot"
                " example scenario. Most of the time you should only add the input data into the"
                " prompt, and the desired output into the completion"
            )
            findings.append(
                Finding(
                    "prompt_prefix",
                    OPTIONAL,
                    msg,
                    f"Remove prefix `{_text.show(prefix)}` from all prompts",
                    details={"prefix": prefix},
                )
            )
        else:
            findings.append(Finding("prompt_prefix", INFO, msg, details={"prefix": prefix}))

    # -- completion prefix
    cprefix = _text.common_prefix(list(each_completion))
    if len(cprefix) >= MIN_COMPLETION_PREFIX and len(set(each_completion)) > 1:
        state.completion_prefix = cprefix
        emptied = [i for i, c in enumerate(completions) if c == cprefix]
        msg = (
            f"All completions start with prefix `{_text.show(cprefix)}`. Most of the time you"
            " should only add the output data into the completion, without any prefix"
        )
        if emptied:
            msg += (
                f"\n  WARNING: {_plural(len(emptied), 'completion')} would be left empty by this"
                f" and would be removed: {rows_text(unit, _pick(locs, emptied))}"
            )
        findings.append(
            Finding(
                "completion_prefix",
                OPTIONAL,
                msg,
                f"Remove prefix `{_text.show(cprefix)}` from all completions",
                rows=_pick(locs, emptied),
                details={"prefix": cprefix, "emptied": len(emptied)},
            )
        )

    # -- completion ending (conditional generation only)
    if task == CONDITIONAL:
        if n > 1 and _text.all_equal(completions, cprefix):
            x = _text.show(completions[0])
            findings.append(
                Finding(
                    "identical_completions",
                    ERROR,
                    f"All completions are identical: `{x}`\nEnsure completions are different,"
                    f" otherwise the model will just repeat `{x}`",
                )
            )
            return _finish(table, findings, state, task, classes, stats)
        ending = _text.first_absent(completions, ENDINGS, profiles["completion"], lambda e: False)
        ending = ending or FALLBACK_ENDING
        csuffix = _text.common_suffix(completions) if n > 1 else ""
        if csuffix:
            findings += _suffix_findings("completion", csuffix, ending, completions, locs, unit)
        else:
            state.ending = ending
            findings.append(
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

    # -- leading space
    state.any_spaced = not _text.none_start_with(each_completion, " ")
    if not _text.all_start_with(each_completion, " "):
        findings.append(
            Finding(
                "leading_space",
                OPTIONAL,
                "The completion should start with a whitespace character (` `). This tends to"
                f" produce better results due to the tokenization we use. See {GUIDE} for more"
                " details",
                "Add a whitespace character to the beginning of the completion",
            )
        )

    # -- train/validation split
    if task == CLASSIFICATION and n > 1:
        n_train, n_valid = split_sizes(n)
        findings.append(
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
    return _finish(table, findings, state, task, classes, stats)


def _finish(
    table: Table,
    findings: list[Finding],
    state: Any,
    task: str | None,
    classes: dict[str, int] | None,
    stats: TokenStats | None,
    schema: str = PROMPT_COMPLETION,
) -> Report:
    n = len(state.locs)
    return _report(
        table,
        schema,
        findings,
        n_examples=n,
        task_type=task,
        tokens=stats,
        classes=classes,
        _state=state,
    )


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


def _suffix_findings(
    name: str, suffix: str, suggestion: str, values: list[str], locs: Sequence[int], unit: str
) -> list[Finding]:
    plural = f"{name}s"
    msg = f"All {plural} end with suffix `{_text.show(suffix)}`"
    if len(suffix) > LONG_SUFFIX:
        msg += (
            ". This suffix seems very long. Consider replacing with a shorter suffix, such as"
            f" `{_text.show(suggestion)}`"
        )
    out = [Finding(f"{name}_suffix", INFO, msg, details={"suffix": suffix})]
    cut = len(suffix)
    repeated = [i for i, v in enumerate(values) if suffix in v[:-cut]]
    if repeated:
        rows = _pick(locs, repeated)
        out.append(
            Finding(
                f"{name}_suffix_repeated",
                WARNING,
                f"Some of your {plural} contain the suffix `{_text.show(suffix)}` more than once"
                f" ({rows_text(unit, rows)}). We strongly suggest that you review your {plural}"
                " and add a unique suffix",
                rows=rows,
            )
        )
    return out


def _token_stats(counts: Any, tok: _tokens.Tokenization) -> tuple[TokenStats, list[int]]:
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


def _token_finding(stats: TokenStats) -> Finding:
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


def _over_context(
    over: list[int],
    locs: Sequence[int],
    unit: str,
    stats: TokenStats,
    drops: dict[str, list[int]],
) -> Finding:
    rows = _pick(locs, over)
    ctx = f"the context window of {stats.context:,} tokens ({stats.context_source})"
    if stats.exact:
        drops["over_context"] = over
        return Finding(
            "over_context",
            OPTIONAL,
            f"{_plural(len(over), 'example')} {'is' if len(over) == 1 else 'are'} longer than"
            f" {ctx} and would be truncated in training: {rows_text(unit, rows)}",
            f"Remove {_plural(len(over), 'example')} longer than the context window",
            rows=rows,
            details={"context": stats.context},
        )
    return Finding(
        "over_context",
        WARNING,
        f"{_plural(len(over), 'example')} may be longer than {ctx}, by the characters/4"
        f" estimate: {rows_text(unit, rows)}",
        rows=rows,
        details={"context": stats.context},
    )


# ---------------------------------------------------------------- chat


def _analyze_chat(table: Table, tok: _tokens.Tokenization) -> Report:
    from ftui.records import check_record

    findings = list(table.notes)
    unit = table.unit
    n = len(table)
    msg = f"Your file contains {n:,} chat examples (`messages`)"
    if n < FEW_EXAMPLES:
        msg += ". In general, we recommend having at least a few hundred examples"
    findings.append(Finding("count", INFO, msg, details={"n": n}))
    key = (
        "messages"
        if "messages" in table.columns
        else next(c for c in table.columns if c.lower() == "messages")
    )
    if key != "messages":
        findings.append(
            Finding(
                "messages_column_case",
                NECESSARY,
                f"The `messages` key should be lowercase: `{key}` is used as `messages`",
                f"Lower case key `{key}` to `messages`",
            )
        )
    extra = [c for c in table.columns if c != key]
    if extra:
        findings.append(
            Finding(
                "extra_columns",
                NECESSARY,
                "Chat examples hold only `messages`. Additional columns/keys present are: "
                + ", ".join(f"`{c}`" for c in extra),
                f"Remove additional columns/keys: {', '.join(extra)}",
                details={"columns": extra},
            )
        )
    values = table.data[key]
    locs = table.locs
    bad: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        problem = check_record({"messages": v}) if v is not None else "has no `messages`"
        if problem:
            bad.setdefault(problem, []).append(i)
    if bad:
        positions = sorted(i for ps in bad.values() for i in ps)
        rows = _pick(locs, positions)
        lines = [
            f"\n  {problem}: {rows_text(unit, _pick(locs, ps))}"
            for problem, ps in sorted(bad.items(), key=lambda kv: kv[1][0])[:SHOW_ROWS]
        ]
        findings.append(
            Finding(
                "invalid_examples",
                NECESSARY,
                f"{_plural(len(positions), 'example')} {'is' if len(positions) == 1 else 'are'}"
                " not valid for chat fine-tuning:" + "".join(lines),
                f"Remove {_plural(len(positions), 'invalid example')}",
                rows=rows,
                details={"problems": {p: len(ps) for p, ps in bad.items()}},
            )
        )
        values = _text.drop_positions(values, positions)
        locs = _text.drop_positions(locs, positions)
    n = len(values)
    if n == 0:
        findings.append(Finding("no_examples", ERROR, "No valid chat examples are left"))
        return _report(table, CHAT, findings)
    state = ChatState(values, locs)

    canon = [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]
    seen: set[str] = set()
    dups = []
    for i, c in enumerate(canon):
        if c in seen:
            dups.append(i)
        else:
            seen.add(c)
    del canon, seen
    if dups:
        rows = _pick(locs, dups)
        state.drops["duplicates"] = dups
        findings.append(
            Finding(
                "duplicates",
                OPTIONAL,
                f"There are {len(dups):,} duplicated examples. These are rows:"
                f" {rows_text(unit, rows)}",
                f"Remove {_plural(len(dups), 'duplicate example')}",
                rows=rows,
            )
        )
    not_last = [i for i, v in enumerate(values) if v[-1].get("role") != "assistant"]
    if not_last:
        rows = _pick(locs, not_last)
        findings.append(
            Finding(
                "trailing_turns",
                WARNING,
                f"{_plural(len(not_last), 'example')} {'does' if len(not_last) == 1 else 'do'}"
                " not end with an assistant message; the turns after the last assistant message"
                f" teach nothing: {rows_text(unit, rows)}",
                rows=rows,
            )
        )
    contents = [m["content"] for v in values for m in v]
    sizes = list(map(len, values))
    if tok.count is None:
        per_message = _tokens.estimate(list(map(len, contents)))
    else:
        per_message = tok.count(contents)
    import numpy as np

    offsets = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    counts = np.add.reduceat(np.asarray(per_message, dtype=np.int64), offsets)
    del contents, per_message
    stats, over = _token_stats(counts, tok)
    findings.append(_token_finding(stats))
    if over:
        findings.append(_over_context(over, locs, unit, stats, state.drops))
    return _finish(table, findings, state, None, None, stats, schema=CHAT)
