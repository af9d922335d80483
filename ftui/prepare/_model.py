"""The data model of a prepare report: findings, token statistics, and the clear error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Finding kinds, in the words the CLI prints.
ERROR = "error"  # the data cannot be used as it is; nothing is written
NECESSARY = "necessary"  # a fix that is always applied
OPTIONAL = "optional"  # a recommended fix the user may decline
INFO = "info"  # something worth knowing, no fix
WARNING = "warning"  # something probably wrong that no fix addresses

KINDS = (ERROR, NECESSARY, OPTIONAL, INFO, WARNING)

PROMPT_COMPLETION = "prompt-completion"
CHAT = "chat"

CLASSIFICATION = "classification"
CONDITIONAL = "conditional generation"
OPEN_ENDED = "open-ended generation"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an unreadable input: where (1-based line and column) and what."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class PrepareError(Exception):
    """The input cannot be read (or a report cannot be applied).

    ``path`` names the file, ``problems`` lists every bad place found (at most ``MAX_PROBLEMS``;
    ``total`` counts them all), and ``line``/``column`` are those of the first problem.
    """

    MAX_PROBLEMS = 20

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        problems: list[Problem] | tuple[Problem, ...] = (),
        total: int | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.problems = tuple(problems[: self.MAX_PROBLEMS])
        self.total = len(problems) if total is None else total
        first = self.problems[0] if self.problems else None
        self.line = first.line if first else None
        self.column = first.column if first else None
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.path}: {self.message}" if self.path else self.message
        lines = [head]
        lines += [f"  {p}" for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"  … and {self.total - len(self.problems)} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "problems": [
                {"line": p.line, "column": p.column, "message": p.message} for p in self.problems
            ],
            "total_problems": self.total,
        }


@dataclass(frozen=True)
class Finding:
    """One result of one check.

    ``id`` is stable (scripts and the TUI key on it, and ``apply`` takes the ids of the optional
    findings to accept); ``message`` says what was found; ``action`` says what the fix does (for
    necessary and optional findings); ``rows`` are the input's own locations of the rows involved
    (1-based file lines for JSONL, CSV, TSV and TXT, sheet rows for XLSX, record numbers for a
    JSON document, index labels for a DataFrame), never positions after earlier fixes.
    """

    id: str
    kind: str
    message: str
    action: str | None = None
    rows: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "message": self.message,
            "action": self.action,
            "rows": list(self.rows),
            "details": self.details,
        }


@dataclass(frozen=True)
class TokenStats:
    """Tokens per example, counted by a real tokenizer or estimated as characters / 4."""

    method: str  # "tokenizer" or "estimate"
    source: str  # the tokenizer's origin, or "characters/4"
    total: int
    mean: float
    p50: int
    p95: int
    max: int
    context: int | None  # the model's context window, when known
    context_source: str | None  # where that number comes from
    over_context: int  # examples longer than the context

    @property
    def exact(self) -> bool:
        return self.method == "tokenizer"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "source": self.source,
            "exact": self.exact,
            "total": self.total,
            "mean": round(self.mean, 2),
            "p50": self.p50,
            "p95": self.p95,
            "max": self.max,
            "context": self.context,
            "context_source": self.context_source,
            "over_context": self.over_context,
        }


@dataclass
class Report:
    """What ``analyze`` found. Pass it to ``apply`` to write the prepared file(s).

    ``findings`` are in check order. ``n_records`` counts the records read; ``n_examples`` those
    left after the necessary fixes (what the optional checks looked at). ``unit`` names what the
    row numbers in findings count ("line", "row", "record" or "index").
    """

    path: str | None
    format: str
    schema: str
    unit: str
    n_records: int
    n_examples: int
    task_type: str | None
    findings: list[Finding]
    tokens: TokenStats | None = None
    classes: dict[str, int] | None = None
    model: str | None = None
    _state: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == ERROR]

    @property
    def necessary(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == NECESSARY]

    @property
    def optional(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == OPTIONAL]

    def finding(self, id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "schema": self.schema,
            "unit": self.unit,
            "n_records": self.n_records,
            "n_examples": self.n_examples,
            "task_type": self.task_type,
            "ok": self.ok,
            "model": self.model,
            "tokens": self.tokens.to_dict() if self.tokens else None,
            "classes": self.classes,
            "findings": [f.to_dict() for f in self.findings],
        }
