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


class PromptScreen(ModalScreen["str | None"]):
    """Ask for one line of text (a path, say); Enter answers it, Esc answers None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, message: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.message = message
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.message, markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Label("Enter: OK · Esc: cancel", classes="prompt-help")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickScreen(ModalScreen["str | None"]):
    """Pick one of ``options`` (``(value, label)`` pairs); Esc answers None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="pick.cancel")]

    def __init__(self, title: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose(self) -> ComposeResult:
        from textual.widgets import OptionList
        from textual.widgets.option_list import Option

        with Vertical():
            yield Label(self.title_text, markup=False)
            from rich.text import Text

            yield OptionList(*(Option(Text(label), id=value) for value, label in self.options))

    def on_mount(self) -> None:
        from textual.widgets import OptionList

        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
