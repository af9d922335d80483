"""``analyze``: read the input, then run the checks of its schema (chat or prompt/completion).

The checks themselves are ordered lists of small functions: ``_prompt_completion.CHECKS`` (the
legacy tool's validators, in its order) and ``_chat.CHECKS``.
"""

from __future__ import annotations

import os
from typing import Any

from . import _chat, _prompt_completion, _tokens
from ._model import INFO, Finding, Report
from ._read import read


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
        report = _chat.analyze(table, tok)
    else:
        report = _prompt_completion.analyze(table, tok)
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
