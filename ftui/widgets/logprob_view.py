"""A streamed completion shown token by token, coloured by probability.

Each token of the output is coloured by the probability the model gave it (``exp(logprob)``),
and, so that colour is never the only cue, tokens below 50 % are underlined and tokens below
20 % also bold. A token cursor (left/right, ``h``/``l``) picks a token; the line under the text
shows its probability and the top alternatives the server returned for that position.

The view keeps each choice's text and its tokens with their character offsets, so text that the
server releases without a token of its own (a held-back UTF-8 byte, say) is still shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from ftui.textsafe import visible

#: (lowest probability, bucket name, words) from the most to the least likely.
BUCKETS: tuple[tuple[float, str, str], ...] = (
    (0.8, "high", "≥80%"),
    (0.5, "mid", "50–80%"),
    (0.2, "low", "20–50%"),
    (0.0, "vlow", "<20%"),
)


def bucket(logprob: float | None) -> str | None:
    """The probability bucket of a token (None when the server sent no logprob)."""
    if logprob is None or not isinstance(logprob, int | float) or math.isnan(logprob):
        return None
    p = math.exp(min(0.0, float(logprob)))
    for low, name, _ in BUCKETS:
        if p >= low:
            return name
    return "vlow"


def percent(logprob: float | None) -> str:
    if logprob is None:
        return "—"
    p = math.exp(min(0.0, float(logprob))) * 100
    if p >= 99.95:
        return "100%"
    if p >= 10:
        return f"{p:.1f}%"
    if p >= 0.1:
        return f"{p:.2f}%"
    return f"{p:.1e}%"


def show_token(text: str) -> str:
    """A token as it is quoted in the info line: whitespace made visible."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    out = visible(out)
    return out.replace(" ", "␣") if out.strip() == "" or out.startswith(" ") else out


@dataclass
class TokenInfo:
    """One token of one choice: its text, logprob, top alternatives and where it starts."""

    text: str
    logprob: float | None
    top: Mapping[str, float] | None
    choice: int
    start: int


@dataclass
class _Choice:
    text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    finish_reason: str | None = None


class _TokenText(Widget):
    """The text itself (inside a scroll container); rendered from the parent view's state."""

    DEFAULT_CSS = """
    _TokenText { height: auto; width: 1fr; padding: 0 1; }
    """

    def __init__(self, view: LogprobView) -> None:
        super().__init__()
        self._view = view

    def render(self) -> Text:
        return self._view.build_text()


class LogprobView(Vertical, can_focus=True):
    """Streamed output of one model, with probability colours and a token cursor."""

    DEFAULT_CSS = """
    LogprobView {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
    }
    LogprobView:focus { border: round $accent; }
    LogprobView > VerticalScroll { height: 1fr; scrollbar-size-vertical: 1; }
    LogprobView > .logprob-info { height: 3; padding: 0 1; color: $text-muted; }
    LogprobView > .logprob--high { color: $success; }
    LogprobView > .logprob--mid { color: $warning; }
    LogprobView > .logprob--low { color: $error; text-style: underline; }
    LogprobView > .logprob--vlow { color: $error; text-style: bold underline; }
    LogprobView > .logprob--cursor { text-style: reverse bold; }
    LogprobView > .logprob--header { color: $text-muted; text-style: italic; }
    LogprobView > .logprob--echo { text-style: italic; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "logprob--high",
        "logprob--mid",
        "logprob--low",
        "logprob--vlow",
        "logprob--cursor",
        "logprob--header",
        "logprob--echo",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left,h", "move(-1)", "Prev token", id="logprob.prev", show=False),
        Binding("right,l", "move(1)", "Next token", id="logprob.next", show=False),
        Binding("home,g", "jump(0)", "First token", id="logprob.first", show=False),
        Binding("end,G", "jump(-1)", "Last token", id="logprob.last", show=False),
        Binding("up,k", "scroll(-1)", "Scroll up", id="logprob.up", show=False),
        Binding("down,j", "scroll(1)", "Scroll down", id="logprob.down", show=False),
        Binding("y", "copy", "Copy", id="logprob.copy", tooltip="Copy the output (OSC 52)"),
    ]

    class CursorMoved(Message):
        """The token cursor moved (``token`` is None when it was cleared)."""

        def __init__(self, view: LogprobView, token: TokenInfo | None) -> None:
            super().__init__()
            self.view = view
            self.token = token

        @property
        def control(self) -> LogprobView:
            return self.view

    def __init__(
        self, title: str = "", *, name: str | None = None, id: str | None = None, classes=None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._choices: dict[int, _Choice] = {}
        self._flat: list[TokenInfo] | None = None
        self.cursor: int | None = None
        self.echo_chars = 0
        self.border_title = title
        self._scroll = VerticalScroll(can_focus=False)
        self._text = _TokenText(self)
        self._info = Static("", classes="logprob-info", markup=False)

    def compose(self) -> ComposeResult:
        with self._scroll:
            yield self._text
        yield self._info

    def on_mount(self) -> None:
        self._info.update(self._legend())

    # -- the data ----------------------------------------------------------------------------
    def clear(self, title: str | None = None, *, echo_chars: int = 0) -> None:
        """Forget the output (a new request starts); ``echo_chars`` of echoed prompt to mark."""
        self._choices.clear()
        self._flat = None
        self.cursor = None
        self.echo_chars = echo_chars
        if title is not None:
            self.border_title = title
        self.border_subtitle = ""
        self._info.update(self._legend())
        self._text.refresh(layout=True)

    def add(
        self,
        choice: int,
        text: str,
        tokens: Sequence[str] = (),
        logprobs: Sequence[float | None] = (),
        tops: Sequence[Mapping[str, float] | None] = (),
        offsets: Sequence[int] = (),
    ) -> None:
        """Append one chunk of a choice: its text and, when logprobs were asked for, its tokens."""
        ch = self._choices.setdefault(choice, _Choice())
        base = len(ch.text)
        ch.text += text
        pos = base
        for i, tok in enumerate(tokens):
            start = offsets[i] if i < len(offsets) and isinstance(offsets[i], int) else None
            if start is None or start < pos or start > len(ch.text):
                start = pos  # no usable offset: tokens follow each other
            lp = logprobs[i] if i < len(logprobs) else None
            top = tops[i] if i < len(tops) else None
            ch.tokens.append(
                TokenInfo(
                    text=str(tok),
                    logprob=lp if isinstance(lp, int | float) else None,
                    top=top if isinstance(top, Mapping) else None,
                    choice=choice,
                    start=start,
                )
            )
            pos = start + len(str(tok))
        self._flat = None
        self._text.refresh(layout=True)
        if self.cursor is None:
            self.call_after_refresh(self._scroll.scroll_end, animate=False)

    def add_choice(self, choice: object) -> None:
        """Append a ``ftui.types.CompletionChoice`` (one streamed chunk or a whole choice)."""
        lp = getattr(choice, "logprobs", None)
        index = getattr(choice, "index", 0) or 0
        if lp is None:
            self.add(index, getattr(choice, "text", "") or "")
        else:
            self.add(
                index,
                getattr(choice, "text", "") or "",
                lp.tokens,
                lp.token_logprobs,
                lp.top_logprobs,
                lp.text_offset,
            )
        reason = getattr(choice, "finish_reason", None)
        if reason:
            self._choices[index].finish_reason = reason

    def set_status(self, status: str) -> None:
        self.border_subtitle = status

    def text_of(self, choice: int = 0) -> str:
        ch = self._choices.get(choice)
        return ch.text if ch else ""

    @property
    def choices(self) -> list[int]:
        return sorted(self._choices)

    def finish_reason(self, choice: int = 0) -> str | None:
        ch = self._choices.get(choice)
        return ch.finish_reason if ch else None

    @property
    def tokens(self) -> list[TokenInfo]:
        if self._flat is None:
            self._flat = [t for i in sorted(self._choices) for t in self._choices[i].tokens]
        return self._flat

    @property
    def cursor_token(self) -> TokenInfo | None:
        toks = self.tokens
        if self.cursor is None or not toks:
            return None
        return toks[min(self.cursor, len(toks) - 1)]

    # -- rendering ---------------------------------------------------------------------------
    def _style(self, name: str):
        return self.get_component_rich_style(name, partial=True)

    def build_text(self) -> Text:
        out = Text(no_wrap=False, overflow="fold")
        cursor = self.cursor_token
        styles = {name: self._style(f"logprob--{name}") for _, name, _ in BUCKETS}
        several = len(self._choices) > 1
        for n, index in enumerate(sorted(self._choices)):
            ch = self._choices[index]
            if several:
                if n:
                    out.append("\n")
                out.append(f"── choice {index + 1} ──\n", self._style("logprob--header"))
            pieces = self._pieces(ch)
            for start, end, tok in pieces:
                chunk = visible(ch.text[start:end])
                style = None
                if tok is not None:
                    b = bucket(tok.logprob)
                    style = styles[b] if b else None
                    if start < self.echo_chars:
                        echo = self._style("logprob--echo")
                        style = echo if style is None else style + echo
                    if tok is cursor:
                        if not chunk.strip():
                            chunk = chunk.replace("\n", "↵\n").replace(" ", "·") or "∅"
                        cur = self._style("logprob--cursor")
                        style = cur if style is None else style + cur
                out.append(chunk, style)
        if not self._choices:
            out.append("(no output yet)", self._style("logprob--header"))
        return out

    @staticmethod
    def _pieces(ch: _Choice) -> list[tuple[int, int, TokenInfo | None]]:
        """Slices of the choice's text: (start, end, token or None for text between tokens)."""
        out: list[tuple[int, int, TokenInfo | None]] = []
        pos = 0
        toks = ch.tokens
        for i, tok in enumerate(toks):
            start = max(tok.start, pos)
            if start > pos:
                out.append((pos, start, None))
            end = toks[i + 1].start if i + 1 < len(toks) else len(ch.text)
            end = max(start, min(end, len(ch.text)))
            if end == start and tok.text:
                # a token whose text the stream never delivered: nothing to show, still a stop
                out.append((start, start, tok))
            else:
                out.append((start, end, tok))
            pos = end
        if pos < len(ch.text):
            out.append((pos, len(ch.text), None))
        return out

    def _legend(self) -> Text:
        """The key to the colours, written in the styles themselves (and in words)."""
        out = Text("p: ")
        for i, (_, name, words) in enumerate(BUCKETS):
            if i:
                out.append(" ")
            label = {"low": f"{words} underlined", "vlow": f"{words} bold"}.get(name, words)
            out.append(label, self._style(f"logprob--{name}"))
        out.append("\n←/→ on a token: its probability and top alternatives")
        return out

    def _info_text(self, tok: TokenInfo | None) -> str | Text:
        """The token under the cursor: text and probability first, then the alternatives, then
        where it is (narrow side-by-side panes show the most important part)."""
        if tok is None:
            return self._legend()
        toks = self.tokens
        head = f"“{show_token(tok.text)}” {percent(tok.logprob)}"
        if not tok.top:
            alts = "no alternatives (logprobs ≥ 1 asks for them)"
        else:
            ranked = sorted(
                ((t, v) for t, v in tok.top.items() if t != tok.text),
                key=lambda kv: kv[1],
                reverse=True,
            )
            alts = "alts: " + (
                " · ".join(f"“{show_token(t)}” {percent(v)}" for t, v in ranked) or "none"
            )
        where = f"token {self.cursor + 1 if self.cursor is not None else 0}/{len(toks)}"
        if len(self._choices) > 1:
            where = f"choice {tok.choice + 1}, {where}"
        lp = "" if tok.logprob is None else f", logprob {tok.logprob:.3f}"
        return f"{head}  {alts}\n({where}{lp})"

    # -- the cursor --------------------------------------------------------------------------
    def _moved(self) -> None:
        tok = self.cursor_token
        self._info.update(self._info_text(tok))
        self._text.refresh()
        self.post_message(self.CursorMoved(self, tok))
        self.call_after_refresh(self._scroll_to_cursor)

    def _scroll_to_cursor(self) -> None:
        tok = self.cursor_token
        if tok is None:
            return
        width = max(1, self._text.content_region.width or self._scroll.size.width - 2)
        text = self.build_text()
        # where the cursor token starts in the rendered text: render the text before it
        plain = text.plain
        before = self._rendered_offset(tok)
        if before is None:
            return
        prefix = Text(plain[:before], overflow="fold")
        lines = prefix.wrap(self.app.console, width, overflow="fold")
        y = max(0, len(lines) - 1) if plain[:before] else 0
        if plain[:before].endswith("\n"):
            y += 1
        self._scroll.scroll_to_region(Region(0, y, 1, 1), animate=False)

    def _rendered_offset(self, target: TokenInfo) -> int | None:
        pos = 0
        several = len(self._choices) > 1
        for n, index in enumerate(sorted(self._choices)):
            ch = self._choices[index]
            if several:
                pos += (1 if n else 0) + len(f"── choice {index + 1} ──\n")
            for start, end, tok in self._pieces(ch):
                if tok is target:
                    return pos
                pos += end - start
        return None

    def action_move(self, delta: int) -> None:
        toks = self.tokens
        if not toks:
            return
        if self.cursor is None:
            self.cursor = len(toks) - 1 if delta < 0 else 0
        else:
            self.cursor = max(0, min(len(toks) - 1, self.cursor + delta))
        self._moved()

    def action_jump(self, where: int) -> None:
        toks = self.tokens
        if not toks:
            return
        self.cursor = where if where >= 0 else len(toks) - 1
        self._moved()

    def move_to(self, index: int | None) -> None:
        toks = self.tokens
        self.cursor = None if index is None or not toks else max(0, min(len(toks) - 1, index))
        self._moved()

    def action_scroll(self, lines: int) -> None:
        self._scroll.scroll_relative(y=lines, animate=False)

    def action_copy(self) -> None:
        text = "\n\n".join(self.text_of(i) for i in self.choices)
        if not text:
            self.notify("Nothing to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {len(text)} characters (OSC 52)")
