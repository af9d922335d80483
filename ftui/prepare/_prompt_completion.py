"""The checks of prompt/completion data, in the legacy tool's order (``CHECKS``), and part 2 of
them: the checks of the text (those of the columns and rows are in ``_pc_rows``).

Each check is one of the legacy tool's validators, or one of ours placed where it belongs among
them; it reads and extends one ``Analysis``. Like the legacy tool, every check looks at the data
after the necessary fixes and before any optional one. Unlike it, rows are named by their place
in the input, decisions about rows are kept as sets of rows (so ``apply`` drops exactly the rows a
finding named, whatever was dropped before), and values that are not strings are reported instead
of turned into Python reprs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from . import _text, _tokens
from ._checks import (
    ENDINGS,
    FALLBACK_ENDING,
    FALLBACK_SEPARATOR,
    GUIDE,
    LONG_SUFFIX,
    MAX_CHARS,
    MAX_PROMPT_PREFIX,
    MAX_VALID_EXAMPLES,
    MIN_COMPLETION_PREFIX,
    SEPARATORS,
    SHOW_CLASSES,
    STOP,
    PCState,
    over_context,
    pick,
    plural,
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
    OPEN_ENDED,
    OPTIONAL,
    WARNING,
    Finding,
    Report,
)
from ._pc_rows import (
    Analysis,
    Check,
    completion_column,
    count_examples,
    empty_completions,
    examples_left,
    extra_columns,
    non_text_values,
    prompt_column,
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


def analyze(table: Table, tok: _tokens.Tokenization) -> Report:
    a = Analysis(table, tok, list(table.notes))
    for check in CHECKS:
        if check(a) is STOP:
            break
    return a.report()


# ---------------------------------------------------------------- the checks of the text


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
    non_text_values,  # (the legacy tool turned these into Python reprs)
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
