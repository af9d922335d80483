"""The objects the client returns: one normalised model over both API dialects.

Every object is built from the server's JSON with ``from_api`` and keeps that JSON in ``raw``
(left out of ``repr`` and ``==``), so nothing the server sent is lost. ``to_dict`` gives a plain,
JSON-serialisable view in the normalised shape, the same for both dialects (``ftui jobs --json``).

Dialects: ``"legacy"`` is ``/v1/fine-tunes`` (``ft-`` ids, embedded events without ids, file
objects inside the job); ``"current"`` is ``/v1/fine_tuning/jobs`` (``ftjob-`` ids, events with
ids, file ids). Both become one :class:`Job`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ftui import dialects
from ftui.dialects import Dialect

#: Status strings of both dialects mapped onto one vocabulary (``Job.state``).
_STATE = {
    "created": "pending",
    "pending": "pending",
    "validating_files": "pending",
    "queued": "pending",
    "running": "running",
    "paused": "paused",
    "pausing": "paused",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _Base:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the normalised fields (``raw`` left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "raw":
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, _Base):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class FileObject(_Base):
    id: str
    filename: str = ""
    purpose: str = ""
    bytes: int | None = None
    created_at: int | None = None
    status: str | None = None
    status_details: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> FileObject:
        return cls(
            id=str(d["id"]),
            filename=d.get("filename") or "",
            purpose=d.get("purpose") or "",
            bytes=_int_or_none(d.get("bytes", d.get("size"))),
            created_at=_int_or_none(d.get("created_at")),
            status=d.get("status"),
            status_details=d.get("status_details"),
            raw=dict(d),
        )


@dataclass(frozen=True)
class JobEvent(_Base):
    """One event of a job. ``id`` is None for legacy events (they have none on the wire)."""

    created_at: int
    message: str
    level: str = "info"
    id: str | None = None
    type: str | None = None
    data: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> JobEvent:
        return cls(
            created_at=_int_or_none(d.get("created_at")) or 0,
            message=str(d.get("message", "")),
            level=str(d.get("level") or "info"),
            id=d.get("id"),
            type=d.get("type"),
            data=d.get("data"),
            raw=dict(d),
        )


@dataclass(frozen=True)
class JobError(_Base):
    message: str | None = None
    code: str | None = None
    param: str | None = None


@dataclass(frozen=True)
class Job(_Base):
    """A fine-tuning job of either dialect.

    ``status`` is the server's own word; ``state`` maps it onto pending / running / paused /
    succeeded / failed / cancelled. ``training_file``, ``validation_file`` and ``result_files``
    are file ids in both dialects; legacy jobs also carry the full objects in ``files``.
    ``hyperparameters`` merges the legacy ``hyperparams`` (with the classification options) and the
    current ``hyperparameters``. ``events`` holds the events a legacy job embeds (else empty).
    """

    id: str
    dialect: Dialect
    status: str
    model: str = ""
    created_at: int | None = None
    updated_at: int | None = None
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    organization_id: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    result_files: tuple[str, ...] = ()
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    trained_tokens: int | None = None
    error: JobError | None = None
    events: tuple[JobEvent, ...] = ()
    files: Mapping[str, FileObject] = field(default_factory=dict, repr=False)
    raw: Mapping[str, Any] = _raw()

    @property
    def state(self) -> str:
        return _STATE.get(self.status, self.status)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Job:
        """Build from either dialect's job JSON (told apart by ``object`` and field shapes)."""
        if d.get("object") == "fine-tune" or "hyperparams" in d or "training_files" in d:
            return cls._from_legacy(d)
        return cls._from_current(d)

    @classmethod
    def _from_legacy(cls, d: Mapping[str, Any]) -> Job:
        files: dict[str, FileObject] = {}

        def ids(key: str) -> tuple[str, ...]:
            out = []
            for f in d.get(key) or ():
                if isinstance(f, Mapping) and f.get("id"):
                    files[f["id"]] = FileObject.from_api(f)
                    out.append(str(f["id"]))
                elif isinstance(f, str):
                    out.append(f)
            return tuple(out)

        training, validation, results = (
            ids("training_files"),
            ids("validation_files"),
            ids("result_files"),
        )
        hp = dict(d.get("hyperparams") or {})
        status = str(d.get("status", ""))
        return cls(
            id=str(d["id"]),
            dialect="legacy",
            status=status,
            model=d.get("model") or "",
            created_at=_int_or_none(d.get("created_at")),
            updated_at=_int_or_none(d.get("updated_at")),
            finished_at=_int_or_none(d.get("updated_at"))
            if _STATE.get(status) in TERMINAL_STATES
            else None,
            fine_tuned_model=d.get("fine_tuned_model"),
            organization_id=d.get("organization_id"),
            training_file=training[0] if training else None,
            validation_file=validation[0] if validation else None,
            result_files=results,
            hyperparameters=hp,
            suffix=d.get("suffix"),
            seed=_int_or_none(d.get("seed")),
            events=tuple(JobEvent.from_api(e) for e in d.get("events") or ()),
            files=files,
            raw=dict(d),
        )

    @classmethod
    def _from_current(cls, d: Mapping[str, Any]) -> Job:
        hp = d.get("hyperparameters")
        if not hp:
            method = d.get("method") or {}
            hp = (method.get(method.get("type") or "supervised") or {}).get("hyperparameters")
        err = d.get("error")
        error = None
        if isinstance(err, Mapping) and any(err.get(k) for k in ("message", "code")):
            error = JobError(
                message=err.get("message"), code=err.get("code"), param=err.get("param")
            )
        return cls(
            id=str(d["id"]),
            dialect="current",
            status=str(d.get("status", "")),
            model=d.get("model") or "",
            created_at=_int_or_none(d.get("created_at")),
            updated_at=_int_or_none(d.get("updated_at")),
            finished_at=_int_or_none(d.get("finished_at")),
            fine_tuned_model=d.get("fine_tuned_model"),
            organization_id=d.get("organization_id"),
            training_file=d.get("training_file"),
            validation_file=d.get("validation_file"),
            result_files=tuple(
                f["id"] if isinstance(f, Mapping) else str(f) for f in d.get("result_files") or ()
            ),
            hyperparameters=dict(hp or {}),
            suffix=d.get("user_provided_suffix", d.get("suffix")),
            seed=_int_or_none(d.get("seed")),
            trained_tokens=_int_or_none(d.get("trained_tokens")),
            error=error,
            raw=dict(d),
        )


@dataclass(frozen=True)
class Checkpoint(_Base):
    id: str
    step_number: int
    fine_tuned_model_checkpoint: str = ""
    fine_tuning_job_id: str = ""
    created_at: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Checkpoint:
        return cls(
            id=str(d["id"]),
            step_number=_int_or_none(d.get("step_number")) or 0,
            fine_tuned_model_checkpoint=d.get("fine_tuned_model_checkpoint") or "",
            fine_tuning_job_id=d.get("fine_tuning_job_id") or "",
            created_at=_int_or_none(d.get("created_at")),
            metrics=dict(d.get("metrics") or {}),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Model(_Base):
    id: str
    created: int | None = None
    owned_by: str = ""
    root: str | None = None
    parent: str | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def is_fine_tuned(self) -> bool:
        return dialects.is_fine_tuned(self.id)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Model:
        return cls(
            id=str(d["id"]),
            created=_int_or_none(d.get("created")),
            owned_by=d.get("owned_by") or "",
            root=d.get("root"),
            parent=d.get("parent"),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Deleted(_Base):
    id: str
    object: str = ""
    deleted: bool = True

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Deleted:
        return cls(
            id=str(d.get("id", "")), object=d.get("object") or "", deleted=bool(d.get("deleted"))
        )


@dataclass(frozen=True)
class Logprobs(_Base):
    tokens: tuple[str, ...] = ()
    token_logprobs: tuple[float | None, ...] = ()
    top_logprobs: tuple[Mapping[str, float] | None, ...] = ()
    text_offset: tuple[int, ...] = ()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Logprobs:
        return cls(
            tokens=tuple(d.get("tokens") or ()),
            token_logprobs=tuple(d.get("token_logprobs") or ()),
            top_logprobs=tuple(d.get("top_logprobs") or ()),
            text_offset=tuple(d.get("text_offset") or ()),
        )


@dataclass(frozen=True)
class CompletionChoice(_Base):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: Logprobs | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> CompletionChoice:
        lp = d.get("logprobs")
        return cls(
            index=_int_or_none(d.get("index")) or 0,
            text=d.get("text") or "",
            finish_reason=d.get("finish_reason"),
            logprobs=Logprobs.from_api(lp) if isinstance(lp, Mapping) else None,
        )


@dataclass(frozen=True)
class Usage(_Base):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_api(cls, d: Any) -> Usage | None:
        if not isinstance(d, Mapping):
            return None
        return cls(
            prompt_tokens=int(d.get("prompt_tokens") or 0),
            completion_tokens=int(d.get("completion_tokens") or 0),
            total_tokens=int(d.get("total_tokens") or 0),
        )


@dataclass(frozen=True)
class Completion(_Base):
    """A completion, or one chunk of a streamed completion (same shape)."""

    id: str
    model: str
    choices: tuple[CompletionChoice, ...]
    created: int | None = None
    usage: Usage | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def text(self) -> str:
        """The text of the first choice ('' if there is none)."""
        return self.choices[0].text if self.choices else ""

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Completion:
        return cls(
            id=str(d.get("id", "")),
            model=d.get("model") or "",
            choices=tuple(
                sorted(
                    (CompletionChoice.from_api(c) for c in d.get("choices") or ()),
                    key=lambda c: c.index,
                )
            ),
            created=_int_or_none(d.get("created")),
            usage=Usage.from_api(d.get("usage")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class ChatMessage(_Base):
    """A chat message as the server answers it; in a streamed chunk, the part that is new
    (``role`` only in a choice's first chunk, ``content`` the text added)."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_api(cls, d: Any) -> ChatMessage:
        d = d if isinstance(d, Mapping) else {}
        return cls(
            role=d.get("role"),
            content=d.get("content"),
            refusal=d.get("refusal"),
            tool_calls=tuple(d.get("tool_calls") or ()),
        )


@dataclass(frozen=True)
class ChatChoice(_Base):
    """One choice of a chat completion (``message``) or of a streamed chunk (``delta``)."""

    index: int
    message: ChatMessage
    finish_reason: str | None = None
    logprobs: Mapping[str, Any] | None = None  # {"content": [...], "refusal": ...} as sent

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ChatChoice:
        lp = d.get("logprobs")
        return cls(
            index=_int_or_none(d.get("index")) or 0,
            message=ChatMessage.from_api(d.get("message", d.get("delta"))),
            finish_reason=d.get("finish_reason"),
            logprobs=dict(lp) if isinstance(lp, Mapping) else None,
        )


@dataclass(frozen=True)
class ChatCompletion(_Base):
    """A chat completion, or one chunk of a streamed one (same shape: a chunk's choices hold
    the delta as ``message``; the last chunk with ``include_usage`` has no choices)."""

    id: str
    model: str
    choices: tuple[ChatChoice, ...]
    created: int | None = None
    usage: Usage | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def text(self) -> str:
        """The content of the first choice ('' if there is none)."""
        return (self.choices[0].message.content or "") if self.choices else ""

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ChatCompletion:
        return cls(
            id=str(d.get("id", "")),
            model=d.get("model") or "",
            choices=tuple(
                sorted(
                    (ChatChoice.from_api(c) for c in d.get("choices") or ()), key=lambda c: c.index
                )
            ),
            created=_int_or_none(d.get("created")),
            usage=Usage.from_api(d.get("usage")),
            raw=dict(d),
        )


class ResultRow(Mapping[str, "int | float | str | None"]):
    """One row of a results CSV, read by column name.

    Empty cells are None; integral cells are int, other numbers float, anything else stays a
    string. Columns differ by dialect and options (``training_loss`` vs ``train_loss``,
    ``classification/*``), so look them up by name: ``row["training_loss"]``, ``row.get(...)``.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, int | float | str | None]):
        self._values = dict(values)

    @classmethod
    def from_csv(cls, record: Mapping[str, str | None]) -> ResultRow:
        return cls({k: _cell(v) for k, v in record.items() if k is not None})

    @property
    def step(self) -> int | None:
        value = self._values.get("step")
        return int(value) if isinstance(value, int | float) else None

    def __getitem__(self, key: str) -> int | float | str | None:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ResultRow({self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _cell(text: str | None) -> int | float | str | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
