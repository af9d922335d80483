"""Data preparation: check, explain and fix a fine-tuning file (``ftui prepare-data``).

``analyze(path or DataFrame) -> Report`` runs the checks of the legacy
``openai tools fine_tunes.prepare_data`` in its order, with its thresholds and its split between
necessary and optional fixes, without its bugs, and with more information (token counts, class
balance, chat-format validation, file line numbers). ``apply(report, accepted) -> Written``
writes ``<name>_prepared.jsonl`` (or ``_prepared_train.jsonl`` + ``_prepared_valid.jsonl``).

Neither function prints or asks anything: the CLI and the TUI's prepare screen call them, the TUI
from a worker thread. The server's upload check does not: it validates records with
``ftui.records``, as the chat checks here do. ``show`` quotes a string as the findings do.
"""

from ._analyze import analyze
from ._apply import Written, apply, quote
from ._checks import SEPARATORS, split_sizes
from ._model import (
    CHAT,
    CLASSIFICATION,
    CONDITIONAL,
    ERROR,
    INFO,
    KINDS,
    NECESSARY,
    OPEN_ENDED,
    OPTIONAL,
    PROMPT_COMPLETION,
    WARNING,
    Finding,
    PrepareError,
    Problem,
    Report,
    TokenStats,
)
from ._prompt_completion import infer_task_type
from ._text import show

__all__ = [
    "CHAT",
    "CLASSIFICATION",
    "CONDITIONAL",
    "ERROR",
    "INFO",
    "KINDS",
    "NECESSARY",
    "OPEN_ENDED",
    "OPTIONAL",
    "PROMPT_COMPLETION",
    "SEPARATORS",
    "WARNING",
    "Finding",
    "PrepareError",
    "Problem",
    "Report",
    "TokenStats",
    "Written",
    "analyze",
    "apply",
    "infer_task_type",
    "quote",
    "show",
    "split_sizes",
]
