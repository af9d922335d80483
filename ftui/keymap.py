"""The app's own settings in the config file: ``[keymap]`` (every binding id remappable) and
``[tui]`` (the theme).

::

    [keymap]
    "jobs.cancel" = "x"            # one key
    "section.files" = "2,f3,ctrl+f" # several, comma separated

    [tui]
    theme = "ansi-dark"         # the terminal's own 16 colours

This module reads only the standard library, so it costs nothing at start-up. ``ftui.config``
ignores tables it does not know, so these tables live in the same file as the profiles; they
are read here, straight from the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

#: Keys that tmux, screen and SSH often swallow or that terminals cannot send: refused in a keymap.
UNRELIABLE_KEYS = frozenset({"ctrl+enter", "ctrl+tab", "ctrl+shift+tab", "shift+enter"})


def read_tui_settings(config_path: Path | None) -> tuple[dict[str, str], list[str]]:
    """The ``[tui]`` table (``theme``) and any problems found; never raises."""
    data, problems = _read(config_path)
    table = data.get("tui")
    if table is None:
        return {}, problems
    if not isinstance(table, dict):
        return {}, [*problems, f"{config_path}: [tui] must be a table"]
    out: dict[str, str] = {}
    theme = table.get("theme")
    if theme is not None:
        if isinstance(theme, str) and theme.strip():
            out["theme"] = theme.strip()
        else:
            problems.append('[tui] theme must be a theme name, e.g. "ansi-dark"')
    unknown = set(table) - {"theme"}
    if unknown:
        problems.append(f"[tui] has unknown keys: {', '.join(sorted(unknown))}")
    return out, problems


def _read(config_path: Path | None) -> tuple[dict, list[str]]:
    if config_path is None:
        return {}, []
    try:
        text = Path(config_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, [f"{config_path}: {exc.strerror or exc}"]
    try:
        return tomllib.loads(text), []
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, [f"{config_path}: not valid TOML: {exc}"]


def read_keymap(config_path: Path | None) -> tuple[dict[str, str], list[str]]:
    """The ``[keymap]`` table of the config file (binding id → keys) and any problems found.

    A missing file or table is an empty keymap. Bad entries are skipped and reported, never
    raised: a typo in the keymap must not stop ftui from starting.
    """
    data, problems = _read(config_path)
    if problems:
        return {}, problems
    table = data.get("keymap")
    if table is None:
        return {}, problems
    if not isinstance(table, dict):
        return {}, [f'{config_path}: [keymap] must be a table of binding id = "keys"']
    keymap: dict[str, str] = {}
    for binding_id, keys in table.items():
        if not isinstance(keys, str) or not keys.strip():
            problems.append(f"keymap {binding_id!r}: keys must be a non-empty string")
            continue
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        bad = [k for k in parts if k.lower() in UNRELIABLE_KEYS]
        if bad:
            problems.append(
                f"keymap {binding_id!r}: {', '.join(bad)} is not sent reliably through "
                "tmux/SSH; pick another key"
            )
            parts = [k for k in parts if k.lower() not in UNRELIABLE_KEYS]
        if parts:
            keymap[binding_id] = ",".join(parts)
    return keymap, problems
