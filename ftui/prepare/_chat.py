"""The checks of chat data (``messages``), in order (``CHECKS``).

Each example is validated with ``ftui.records.check_record``, the server's own definition of a
valid chat example, so a file that passes here is accepted by an upload.
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
    extra = [c for c in a.table.columns if c != a.key]
    if not extra:
        return
    a.add(
        Finding(
            "extra_columns",
            NECESSARY,
            "Chat examples hold only `messages`. Additional columns/keys present are: "
            + ", ".join(f"`{c}`" for c in extra),
            f"Remove additional columns/keys: {', '.join(extra)}",
            details={"columns": extra},
        )
    )


def invalid_examples(a: Analysis) -> bool | None:
    """Examples the server would refuse are removed; stop when none is left."""
    from ftui.records import check_record

    values = a.table.data[a.key]
    a.locs = locs = a.table.locs
    bad: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        problem = check_record({"messages": v}) if v is not None else "has no `messages`"
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
    not_last = [i for i, v in enumerate(a.values) if v[-1].get("role") != "assistant"]
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


def token_counts(a: Analysis) -> None:
    """Tokens per example (the sum over its messages), and those longer than the context."""
    import numpy as np

    tok, values = a.tok, a.values
    contents = [m["content"] for v in values for m in v]
    sizes = list(map(len, values))
    if tok.count is None:
        per_message = _tokens.estimate(list(map(len, contents)))
    else:
        per_message = tok.count(contents)
    offsets = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    counts = np.add.reduceat(np.asarray(per_message, dtype=np.int64), offsets)
    del contents, per_message
    a.stats, over = token_stats(counts, tok)
    a.add(token_finding(a.stats))
    if over:
        a.add(over_context(over, a.locs, a.unit, a.stats, a.state.drops))


CHECKS: list[Check] = [
    count_examples,
    messages_key,
    extra_columns,
    invalid_examples,
    duplicates,
    trailing_turns,
    token_counts,
]
