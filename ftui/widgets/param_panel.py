"""The completion console's side panel: every parameter of ``POST /v1/completions``.

One compact row per parameter (label + one-line input), so the whole panel fits in 24 rows.
Values are checked as they are typed: a bad value is marked on its row with a ✖ and the reason
in words (not by colour alone), and :meth:`ParamPanel.params` raises :class:`ParamError` naming
the field, so nothing bad is ever sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Checkbox, Input, Label, Static

from ftui.widgets.fields import real, whole


class ParamError(ValueError):
    """A parameter that cannot be sent; ``field`` is its name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", ",": ","}


def parse_stop(text: str) -> list[str] | None:
    """Stop sequences as typed: comma-separated, with ``\\n``, ``\\t``, ``\\,`` and ``\\\\``.

    ``###, \\n\\n`` → ``["###", "\\n\\n"]``. At most four, none empty. Spaces around commas are
    dropped; write ``\\s`` for a sequence that starts or ends with a space.
    """
    if not text.strip():
        return None
    items: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "s":
                cur.append("\x00")  # a protected space, restored after stripping
            elif nxt in _ESCAPES:
                cur.append(_ESCAPES[nxt])
            else:
                raise ValueError(f"unknown escape \\{nxt} (use \\n \\t \\r \\s \\, \\\\)")
            i += 2
            continue
        if c == ",":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur))
    out = []
    for item in items:
        item = item.strip(" ").replace("\x00", " ")
        if not item:
            raise ValueError("an empty stop sequence (write \\s for a space)")
        out.append(item)
    if len(out) > 4:
        raise ValueError(f"at most 4 sequences, got {len(out)}")
    return out


def parse_bias(text: str) -> dict[str, float] | None:
    """``token id: bias`` pairs, comma-separated (``50256: -100, 13: 5``); biases −100…100."""
    if not text.strip():
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        token, sep, amount = part.partition(":")
        if not sep:
            raise ValueError(f"{part.strip()!r} is not token:bias")
        try:
            tid = int(token.strip())
            bias = float(amount.strip())
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not token:bias (numbers)") from None
        if tid < 0:
            raise ValueError("token ids are not negative")
        if math.isnan(bias) or not -100 <= bias <= 100:
            raise ValueError("biases are between -100 and 100")
        out[str(tid)] = bias
    return out


def format_stop(stops: Any) -> str:
    if not stops:
        return ""
    if isinstance(stops, str):
        stops = [stops]

    def esc(s: str) -> str:
        s = s.replace("\\", "\\\\").replace(",", "\\,").replace("\n", "\\n").replace("\t", "\\t")
        s = s.replace("\r", "\\r")
        if s.startswith(" "):
            s = "\\s" + s[1:]
        if s.endswith(" ") and len(s) > 1:
            s = s[:-1] + "\\s"
        return s

    return ", ".join(esc(s) for s in stops)


@dataclass(frozen=True)
class Field:
    name: str  # the API's parameter name
    label: str
    default: str  # what the input starts with
    parse: Callable[[str], Any]
    help: str


FIELDS: tuple[Field, ...] = (
    Field("max_tokens", "max tokens", "64", whole(0, 4096), "tokens to generate (0–4096)"),
    Field("temperature", "temperature", "1", real(0, 2), "0 = greedy … 2"),
    Field("top_p", "top-p", "1", real(0, 1), "nucleus sampling mass (0–1)"),
    Field("n", "n", "1", whole(1, 16), "choices per prompt (1–16)"),
    Field("stop", "stop", "", parse_stop, "up to 4, comma-separated; \\n \\t \\s \\,"),
    Field("presence_penalty", "presence", "0", real(-2, 2), "presence penalty (−2…2)"),
    Field("frequency_penalty", "frequency", "0", real(-2, 2), "frequency penalty (−2…2)"),
    Field("logprobs", "logprobs", "5", whole(0, 5), "top alternatives per token (0–5; empty: off)"),
    Field("seed", "seed", "", whole(-(1 << 63), (1 << 64) - 1), "empty: random"),
    Field("logit_bias", "logit bias", "", parse_bias, "token:bias, … (−100…100; −100 bans)"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS) + ("echo",)


class TextCheckbox(Checkbox):
    """A checkbox that says ``[x]`` or ``[ ]``: its state is readable without colour."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble(("[x]" if self.value else "[ ]", style))


class ParamPanel(VerticalScroll):
    """Inputs for every completion parameter; ``params()`` gives the checked values."""

    DEFAULT_CSS = """
    ParamPanel {
        width: 30;
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text;
        padding: 0 0;
        scrollbar-size-vertical: 1;
    }
    ParamPanel:focus-within { border: round $accent; }
    ParamPanel > Horizontal { height: 1; width: 1fr; }
    ParamPanel > Horizontal > Label { width: 13; padding: 0 0 0 1; color: $text-muted; }
    ParamPanel > Horizontal > Input { width: 1fr; }
    ParamPanel > Horizontal > .param-mark { width: 2; }
    ParamPanel > Checkbox { margin: 0 0 0 1; }
    ParamPanel > .param-help { color: $text-muted; padding: 0 1; height: auto; }
    ParamPanel > .param-error { color: $error; padding: 0 1; height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, can_focus=False)
        self.border_title = "Parameters"
        self._errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        for f in FIELDS:
            with Horizontal(id=f"row-{f.name}"):
                yield Label(f.label)
                yield Input(
                    f.default,
                    placeholder="—",
                    id=f"param-{f.name}",
                    compact=True,
                    tooltip=f.help,
                    select_on_focus=False,
                )
                yield Static(" ", classes="param-mark", id=f"mark-{f.name}")
        yield TextCheckbox("echo prompt", id="param-echo", compact=True)
        yield Static("", classes="param-error", id="param-error")
        yield Static("", classes="param-help", id="param-help")

    def on_mount(self) -> None:
        self._show_help(FIELDS[0])

    # -- values ------------------------------------------------------------------------------
    def _input(self, name: str) -> Input:
        return self.query_one(f"#param-{name}", Input)

    def params(self) -> dict[str, Any]:
        """The parameters to send (unset ones left out); raises ParamError on a bad value."""
        out: dict[str, Any] = {}
        for f in FIELDS:
            text = self._input(f.name).value
            try:
                value = f.parse(text)
            except ValueError as exc:
                raise ParamError(f.label, str(exc)) from None
            if value is not None:
                out[f.name] = value
        if self.query_one("#param-echo", Checkbox).value:
            out["echo"] = True
        return out

    def values(self) -> dict[str, Any]:
        """The raw texts of every field (for the history), echo as a bool."""
        out: dict[str, Any] = {f.name: self._input(f.name).value for f in FIELDS}
        out["echo"] = self.query_one("#param-echo", Checkbox).value
        return out

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Fill fields from a history entry (raw texts, or API values); others are kept."""
        for f in FIELDS:
            if f.name in values:
                value = values[f.name]
                if f.name == "stop" and not isinstance(value, str):
                    text = format_stop(value)
                elif f.name == "logit_bias" and isinstance(value, Mapping):
                    text = ", ".join(f"{k}:{v:g}" for k, v in value.items())
                else:
                    text = "" if value is None else str(value)
                self._input(f.name).value = text
        if "echo" in values:
            self.query_one("#param-echo", Checkbox).value = bool(values["echo"])

    def set_value(self, name: str, value: Any) -> None:
        self.set_values({name: value})

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    # -- feedback ----------------------------------------------------------------------------
    def _check(self, f: Field) -> None:
        inp = self._input(f.name)
        try:
            f.parse(inp.value)
        except ValueError as exc:
            self._errors[f.name] = f"{f.label}: {exc}"
            inp.add_class("-invalid")
            self.query_one(f"#mark-{f.name}", Static).update("✖")
        else:
            self._errors.pop(f.name, None)
            inp.remove_class("-invalid")
            self.query_one(f"#mark-{f.name}", Static).update(" ")
        self.query_one("#param-error", Static).update(
            "\n".join(f"✖ {m}" for m in self._errors.values())
        )

    def _show_help(self, f: Field) -> None:
        self.query_one("#param-help", Static).update(f"{f.label}: {f.help}")

    def on_input_changed(self, event: Input.Changed) -> None:
        name = (event.input.id or "").removeprefix("param-")
        for f in FIELDS:
            if f.name == name:
                self._check(f)
                break

    def on_descendant_focus(self, event) -> None:
        widget = event.widget
        name = (getattr(widget, "id", None) or "").removeprefix("param-")
        for f in FIELDS:
            if f.name == name:
                self._show_help(f)
                return
        if name == "echo":
            self.query_one("#param-help", Static).update("echo: the prompt is part of the output")
