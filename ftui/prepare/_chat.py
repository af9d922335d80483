"""The checks of chat data (``messages``, with a line's ``tools``, ``functions`` and
``parallel_tool_calls``), in order (``CHECKS``).

Each example is validated with ``ftui.records.check_record``, the server's own definition of a
valid chat example, so a file that passes here is accepted by an upload. The report also gives
the trained (weighted) assistant turns, the use of functions, and the hosted service's limits.

Tokens per example are counted as the hosted service's cookbook counted them: the text of every
message (content, name, calls as JSON) and of the line's function definitions (as JSON), plus 3
per message and 3 for the reply; characters/4 without a tokenizer. The base model's chat
template, which training uses, may add or save a few per message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _text, _tokens
from ._checks import (
    FEW_EXAMPLES,
    SHOW_ROWS,
    STOP,
    ChatState,
    finish,
    over_context,
    pick,
    plural,
    report,
    rows_text,
    token_finding,
    token_stats,
)
from ._model import CHAT, ERROR, INFO, NECESSARY, OPTIONAL, WARNING, Finding, Report, TokenStats
from ._read import Table
from .readers._common import CHAT_KEYS

# The hosted service's limits for chat files (it refused a file with fewer examples, and cut
# examples longer than its largest training context at the end).
HOSTED_MIN_EXAMPLES = 10
HOSTED_MAX_EXAMPLE_TOKENS = 65_536
TOKENS_PER_MESSAGE = 3  # the cookbook's overhead per message, and for the reply's start


@dataclass
class Analysis:
    """What the chat checks share; positions index ``values``, ``locs`` maps them to rows."""

    table: Table
    tok: _tokens.Tokenization
    findings: list[Finding]
    key: str = "messages"  # the input's spelling of `messages`
    values: list[Any] = field(default_factory=list)
    locs: Sequence[int] = ()
    state: ChatState | None = None
    stats: TokenStats | None = None

    @property
    def unit(self) -> str:
        return self.table.unit

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def report(self) -> Report:
        if self.state is None:
            return report(self.table, CHAT, self.findings)
        return finish(self.table, self.findings, self.state, None, None, self.stats, schema=CHAT)


Check = Callable[[Analysis], bool | None]


def analyze(table: Table, tok: _tokens.Tokenization) -> Report:
    a = Analysis(table, tok, list(table.notes))
    for check in CHECKS:
        if check(a) is STOP:
            break
    return a.report()


def count_examples(a: Analysis) -> None:
    n = len(a.table)
    msg = f"Your file contains {n:,} chat examples (`messages`)"
    if n < FEW_EXAMPLES:
        msg += ". In general, we recommend having at least a few hundred examples"
    a.add(Finding("count", INFO, msg, details={"n": n}))


def messages_key(a: Analysis) -> None:
    columns = a.table.columns
    if "messages" in columns:
        return
    a.key = key = next(c for c in columns if c.lower() == "messages")
    a.add(
        Finding(
            "messages_column_case",
            NECESSARY,
            f"The `messages` key should be lowercase: `{key}` is used as `messages`",
            f"Lower case key `{key}` to `messages`",
        )
    )


def extra_columns(a: Analysis) -> None:
    extra = [c for c in a.table.columns if c != a.key and c not in CHAT_KEYS]
    if not extra:
        return
    a.add(
        Finding(
            "extra_columns",
            NECESSARY,
            "Chat examples hold only `messages`, `tools`, `functions` and"
            " `parallel_tool_calls`. Additional columns/keys present are: "
            + ", ".join(f"`{c}`" for c in extra),
            f"Remove additional columns/keys: {', '.join(extra)}",
            details={"columns": extra},
        )
    )


def invalid_examples(a: Analysis) -> bool | None:
    """Examples the server would refuse are removed; stop when none is left."""
    from ftui.records import check_record

    values = records(a.table, a.key)
    a.locs = locs = a.table.locs
    bad: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        problem = check_record(v) if v["messages"] is not None else "has no `messages`"
        if problem:
            bad.setdefault(problem, []).append(i)
    if bad:
        positions = sorted(i for ps in bad.values() for i in ps)
        rows = pick(locs, positions)
        lines = [
            f"\n  {problem}: {rows_text(a.unit, pick(locs, ps))}"
            for problem, ps in sorted(bad.items(), key=lambda kv: kv[1][0])[:SHOW_ROWS]
        ]
        a.add(
            Finding(
                "invalid_examples",
                NECESSARY,
                f"{plural(len(positions), 'example')} {'is' if len(positions) == 1 else 'are'}"
                " not valid for chat fine-tuning:" + "".join(lines),
                f"Remove {plural(len(positions), 'invalid example')}",
                rows=rows,
                details={"problems": {p: len(ps) for p, ps in bad.items()}},
            )
        )
        values = _text.drop_positions(values, positions)
        a.locs = _text.drop_positions(locs, positions)
    a.values = values
    if len(values) == 0:
        a.add(Finding("no_examples", ERROR, "No valid chat examples are left"))
        return STOP
    a.state = ChatState(values, a.locs)
    return None


def records(table: Table, key: str) -> list[dict]:
    """Each row as the chat line it will be written as: its messages and the other chat keys
    it has (a missing or null value is left out)."""
    others = [(k, table.data[k]) for k in CHAT_KEYS if k in table.data]
    return [
        {"messages": m, **{k: col[i] for k, col in others if col[i] is not None}}
        for i, m in enumerate(table.data[key])
    ]


def duplicates(a: Analysis) -> None:
    canon = [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in a.values]
    seen: set[str] = set()
    dups = []
    for i, c in enumerate(canon):
        if c in seen:
            dups.append(i)
        else:
            seen.add(c)
    del canon, seen
    if not dups:
        return
    rows = pick(a.locs, dups)
    a.state.drops["duplicates"] = dups
    a.add(
        Finding(
            "duplicates",
            OPTIONAL,
            f"There are {len(dups):,} duplicated examples. These are rows:"
            f" {rows_text(a.unit, rows)}",
            f"Remove {plural(len(dups), 'duplicate example')}",
            rows=rows,
        )
    )


def trailing_turns(a: Analysis) -> None:
    not_last = [i for i, v in enumerate(a.values) if v["messages"][-1].get("role") != "assistant"]
    if not not_last:
        return
    rows = pick(a.locs, not_last)
    a.add(
        Finding(
            "trailing_turns",
            WARNING,
            f"{plural(len(not_last), 'example')} {'does' if len(not_last) == 1 else 'do'}"
            " not end with an assistant message; the turns after the last assistant message"
            f" teach nothing: {rows_text(a.unit, rows)}",
            rows=rows,
        )
    )


def weighted_turns(a: Analysis) -> None:
    """Assistant turns, and how many are trained (weight 1, the default) or context only."""
    turns = [m for v in a.values for m in v["messages"] if m.get("role") == "assistant"]
    skipped = sum(1 for m in turns if m.get("weight", 1) == 0)
    trained = len(turns) - skipped
    msg = f"{plural(len(turns), 'assistant turn')}: {trained:,} trained"
    if skipped:
        msg += f", {skipped:,} with weight 0 (context only, not trained on)"
    a.add(
        Finding(
            "weighted_turns",
            INFO,
            msg,
            details={"assistant_turns": len(turns), "trained": trained, "weight_0": skipped},
        )
    )


def tool_usage(a: Analysis) -> None:
    """Examples that define functions, the calls the assistant makes, the results it is given."""
    with_tools = sum(1 for v in a.values if "tools" in v or "functions" in v)
    messages = [m for v in a.values for m in v["messages"]]
    calls = sum(len(m.get("tool_calls") or ()) + ("function_call" in m) for m in messages)
    results = sum(1 for m in messages if m.get("role") in ("tool", "function"))
    if not (with_tools or calls or results):
        return
    a.add(
        Finding(
            "tool_usage",
            INFO,
            f"{plural(with_tools, 'example')} {'defines' if with_tools == 1 else 'define'}"
            f" functions (`tools` or `functions`); the assistant makes"
            f" {plural(calls, 'function call')} and reads {plural(results, 'tool result')}",
            details={
                "examples_with_tools": with_tools,
                "tool_calls": calls,
                "tool_messages": results,
            },
        )
    )


def example_texts(example: dict) -> list[str]:
    """The texts whose tokens an example is counted by (see the module's docstring)."""
    from ftui.records import content_text

    texts = [json.dumps(example[k]) for k in ("tools", "functions") if k in example]
    for m in example["messages"]:
        texts.append(content_text(m.get("content")) + m.get("name", ""))
        calls = [c["function"] for c in m.get("tool_calls") or ()]
        calls += [m["function_call"]] if "function_call" in m else []
        texts += [c["name"] + c["arguments"] for c in calls]
    return texts


def token_counts(a: Analysis) -> None:
    """Tokens per example, and those longer than the context."""
    import numpy as np

    tok, values = a.tok, a.values
    texts = [example_texts(v) for v in values]
    flat = [t for ts in texts for t in ts]
    sizes = list(map(len, texts))
    per_text = _tokens.estimate(list(map(len, flat))) if tok.count is None else tok.count(flat)
    offsets = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    counts = np.add.reduceat(np.asarray(per_text, dtype=np.int64), offsets)
    overhead = [TOKENS_PER_MESSAGE * (len(v["messages"]) + 1) for v in values]
    counts = counts + np.asarray(overhead, dtype=np.int64)
    del texts, flat, per_text
    a.stats, over = token_stats(counts, tok)
    a.add(token_finding(a.stats))
    if over:
        a.add(over_context(over, a.locs, a.unit, a.stats, a.state.drops))
    hosted_over = np.flatnonzero(counts > HOSTED_MAX_EXAMPLE_TOKENS).tolist()
    if hosted_over:
        rows = pick(a.locs, hosted_over)
        a.add(
            Finding(
                "hosted_example_tokens",
                WARNING,
                f"{plural(len(rows), 'example')} {'is' if len(rows) == 1 else 'are'} longer"
                f" than {HOSTED_MAX_EXAMPLE_TOKENS:,} tokens, the largest context the hosted"
                " service trained on; it cut them at the end (trailing replies lost):"
                f" {rows_text(a.unit, rows)}",
                rows=rows,
                details={"limit": HOSTED_MAX_EXAMPLE_TOKENS},
            )
        )


def hosted_min_examples(a: Analysis) -> None:
    n = len(a.values)
    if n >= HOSTED_MIN_EXAMPLES:
        return
    a.add(
        Finding(
            "hosted_min_examples",
            WARNING,
            f"{plural(n, 'valid example')}: the hosted service refused training files with"
            f" fewer than {HOSTED_MIN_EXAMPLES} examples (ftui serve trains on them)",
            details={"n": n, "minimum": HOSTED_MIN_EXAMPLES},
        )
    )


CHECKS: list[Check] = [
    count_examples,
    messages_key,
    extra_columns,
    invalid_examples,
    duplicates,
    trailing_turns,
    weighted_turns,
    tool_usage,
    token_counts,
    hosted_min_examples,
]
