"""``?``: the keys of the current screen (as remapped by the keymap), with their binding ids."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def _key_label(app, key: str, binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    try:
        return app.get_key_display(binding)
    except Exception:  # noqa: BLE001 - cosmetic
        return key


def keys_table(screen: Screen) -> Table:
    """Every enabled binding reachable from ``screen``: this screen's first, then global."""
    app = screen.app
    rows: dict[str, list[tuple[str, str, str]]] = {"This screen": [], "Everywhere": []}
    seen: dict[tuple[int, str], int] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description:
            continue
        if not binding.id:
            continue  # Textual's built-in keys (arrows, tab, page up…): known, and they crowd
        group = "Everywhere" if active.node is app else "This screen"
        ident = (id(active.node), binding.action)
        label = _key_label(app, key, binding)
        if ident in seen:  # another key of the same binding: list them together
            entries = rows[group]
            i = seen[ident]
            k, d, b = entries[i]
            if label not in k.split(" / "):
                entries[i] = (f"{k} / {label}", d, b)
            continue
        seen[ident] = len(rows[group])
        rows[group].append((label, binding.description, binding.id or ""))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_column(style="dim", no_wrap=True)
    for group, entries in rows.items():
        if not entries:
            continue
        table.add_row(Text(group, style="underline"), "", "")
        for k, d, b in entries:
            table.add_row(k, d, b)
        table.add_row("", "", "")
    return table


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened from."""

    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", id="help.close"),
    ]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.for_screen = screen

    def compose(self) -> ComposeResult:
        name = getattr(self.for_screen, "title", None) or type(self.for_screen).__name__
        with VerticalScroll():
            yield Static(Text(f"Keys: {name}", style="bold"))
            yield Static(keys_table(self.for_screen), id="help-keys")
            yield Static(
                Text(
                    "ctrl+p: every action by name (command palette). Remap any key in the "
                    "config file's [keymap] table by the id on the right, e.g.\n"
                    '  [keymap]\n  "jobs.cancel" = "x"\n'
                    "q or esc goes back; ctrl+q quits.",
                    style="dim",
                )
            )

    def action_close(self) -> None:
        self.dismiss(None)
