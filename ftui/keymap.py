"""The app's own settings in the config file: ``[keymap]`` (every binding id remappable) and
``[tui]`` (the theme).

::

    [keymap]
    "jobs.cancel" = "x"            # one key
    "section.files" = "2,f3,ctrl+f" # several, comma separated

    [tui]
    theme = "ansi-dark"         # the terminal's own 16 colours

These tables live in the same file as the profiles: :class:`ftui.config.Config` reads the file
once and keeps them as they are (``Config.app_tables``); they are checked here. Standard library
only, so it costs nothing at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Keys that tmux, screen and SSH often swallow or that terminals cannot send: refused in a keymap.
UNRELIABLE_KEYS = frozenset({"ctrl+enter", "ctrl+tab", "ctrl+shift+tab", "shift+enter"})


def check_tui(table: Any, where: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The ``[tui]`` table's settings (``theme``) and any problems found; never raises."""
    if table is None:
        return {}, []
    if not isinstance(table, dict):
        return {}, [f"{where}: [tui] must be a table"]
    out: dict[str, str] = {}
    problems: list[str] = []
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


def check_keymap(table: Any, where: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The ``[keymap]`` table (binding id → keys) and any problems found.

    A missing table is an empty keymap. Bad entries are skipped and reported, never raised: a
    typo in the keymap must not stop ftui from starting.
    """
    if table is None:
        return {}, []
    if not isinstance(table, dict):
        return {}, [f'{where}: [keymap] must be a table of binding id = "keys"']
    keymap: dict[str, str] = {}
    problems: list[str] = []
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
