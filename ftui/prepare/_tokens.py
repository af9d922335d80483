"""Token counts per example: the base model's own tokenizer when it is on this machine, else an
estimate of characters / 4 (labelled as such). Nothing here downloads anything."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftui import datadir

# Context windows of the legacy OpenAI base models (the legacy tool's "2048 tokens" advice).
KNOWN_CONTEXT = {
    "ada": 2048,
    "babbage": 2048,
    "curie": 2048,
    "davinci": 2048,
    "babbage-002": 16384,
    "davinci-002": 16384,
}
DEFAULT_CONTEXT = 2048
CHARS_PER_TOKEN = 4

Count = Callable[[Sequence[str]], list[int]]


@dataclass
class Tokenization:
    count: Count | None  # None: estimate from characters
    source: str  # where the tokenizer came from, or "characters/4"
    context: int
    context_source: str
    note: str | None = None  # why the tokenizer is not used, when a model was named


def counter_for(tokenizer: Any) -> Count:
    """A batch counting function for a `tokenizers.Tokenizer`, a transformers tokenizer, or a
    callable that already takes a list of strings and returns their token counts."""
    if callable(getattr(tokenizer, "encode_batch", None)):

        def count(texts: Sequence[str]) -> list[int]:
            encs = tokenizer.encode_batch(list(texts), add_special_tokens=False)
            return [len(e.ids) for e in encs]

        return count
    if callable(tokenizer) and hasattr(tokenizer, "convert_tokens_to_ids"):

        def count_hf(texts: Sequence[str]) -> list[int]:
            ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
            return [len(x) for x in ids]

        return count_hf
    if callable(tokenizer):
        return lambda texts: [int(n) for n in tokenizer(list(texts))]
    raise TypeError(f"not a tokenizer: {tokenizer!r}")


def _model_dir(model: str, data_dir: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    """A local directory for ``model`` (a path, an alias, a cached Hugging Face id), or a reason."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path, ""
    where = Path(data_dir or "/nonexistent")  # no data dir: only the built-in names
    try:
        target = datadir.follow_aliases(model, datadir.load_table(where))
        available, local = datadir.target_local_path(target, where)
    except Exception as exc:  # a broken user table, or huggingface_hub missing
        return None, f"the model cannot be looked up ({exc})"
    if local is not None:
        return local, ""
    if available:
        return None, f"`{model}` is not converted yet (run `ftui serve` once)"
    return None, f"`{model}` is not available on this machine"


def resolve(
    model: str | None,
    tokenizer: Any = None,
    context: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Tokenization:
    count = counter_for(tokenizer) if tokenizer is not None else None
    source = "the given tokenizer" if tokenizer is not None else "characters/4"
    note = None
    ctx_source = "given" if context else None
    local = None
    if model and tokenizer is None:
        local, why = _model_dir(model, data_dir)
        tok_file = local / "tokenizer.json" if local else None
        if tok_file is not None and tok_file.is_file():
            try:
                from tokenizers import Tokenizer

                count = counter_for(Tokenizer.from_file(str(tok_file)))
                source = f"the tokenizer of `{model}`"
            except Exception as exc:  # tokenizers not installed, or an unreadable file
                note = f"its tokenizer could not be loaded ({exc})"
        elif local is not None:
            note = f"{local} has no tokenizer.json"
        else:
            note = why
    elif model and local is None:
        local, _ = _model_dir(model, data_dir)
    if not context and model:
        if local is not None:
            context = datadir.context_length(local)
            if context:
                ctx_source = f"`{model}`"
        if not context and model in KNOWN_CONTEXT:
            context, ctx_source = KNOWN_CONTEXT[model], f"`{model}`"
    if not context:
        context, ctx_source = DEFAULT_CONTEXT, "assumed: the legacy models' context"
    return Tokenization(count, source, int(context), ctx_source or "given", note)


def estimate(lengths: Sequence[int]) -> Any:
    """Tokens from characters: ceil(chars / 4), as a numpy array."""
    import numpy as np

    return (np.asarray(lengths, dtype=np.int64) + (CHARS_PER_TOKEN - 1)) // CHARS_PER_TOKEN
