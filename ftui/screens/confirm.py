"""A reusable confirmation modal: ``await app.push_screen_wait(ConfirmScreen(...))`` → bool.

With ``require_text`` the person must type that text (a model name, say) before ``y`` / Enter
confirms; Esc or ``n`` always answers False.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; optionally require typing ``require_text`` to say yes."""

    BINDINGS = [
        Binding("escape", "answer(False)", "No", id="confirm.no"),
        Binding("n", "answer(False)", "No", id="confirm.no_key", show=False),
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
    ]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 64; max-width: 100%; height: auto; border: thick $warning; padding: 1 2;
        background: $surface;
    }
    ConfirmScreen #confirm-message { width: 1fr; margin-bottom: 1; }
    ConfirmScreen #confirm-buttons { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """

    def __init__(self, message: str, require_text: str | None = None) -> None:
        super().__init__()
        self.message = message
        self.require_text = require_text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.message, id="confirm-message", markup=False)
            if self.require_text is not None:
                yield Label(f"Type {self.require_text} to confirm:", markup=False)
                yield Input(id="confirm-input")
            with Horizontal(id="confirm-buttons"):
                yield Button("No (esc)", id="confirm-no")
                yield Button(
                    "Yes (y)",
                    id="confirm-yes",
                    variant="warning",
                    disabled=self.require_text is not None,
                )

    def on_mount(self) -> None:
        if self.require_text is not None:
            self.query_one(Input).focus()
        else:
            self.query_one("#confirm-no", Button).focus()

    def _typed_ok(self) -> bool:
        if self.require_text is None:
            return True
        return self.query_one(Input).value.strip() == self.require_text

    @on(Input.Changed)
    def _changed(self) -> None:
        self.query_one("#confirm-yes", Button).disabled = not self._typed_ok()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        if self._typed_ok():
            self.dismiss(True)
        else:
            self.notify(f"Type {self.require_text} exactly to confirm", severity="warning")

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.action_answer(True)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, yes: bool) -> None:
        if yes and not self._typed_ok():
            return
        self.dismiss(yes)
