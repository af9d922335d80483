"""The text of generated choices: incremental detokenizing and stop sequences.

Streamed and non-streamed output are made by the same code, so they agree exactly: a
detokenizer that holds back partial UTF-8, and a per-choice text state that holds back what
could still turn into a stop sequence and releases whole tokens in order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PREFIX_WINDOW = 5  # tokens of context the detokenizer decodes with (for SentencePiece spaces)


class Detokenizer:
    """Text of a growing list of ids, as stable deltas. A token that ends in the middle of a
    UTF-8 sequence yields no text until a later token completes it (or ``final`` is given)."""

    def __init__(self, decode: Callable[[Sequence[int]], str], context: Sequence[int]) -> None:
        self.decode = decode
        self.ids = list(context)
        self.prefix = max(0, len(self.ids) - PREFIX_WINDOW)
        self.read = len(self.ids)

    def push(self, token_id: int | None, final: bool = False) -> str:
        if token_id is not None:
            self.ids.append(token_id)
        if self.read == len(self.ids):
            return ""
        before = self.decode(self.ids[self.prefix : self.read])
        after = self.decode(self.ids[self.prefix :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        return self.push(None, final=True)


@dataclass
class Token:
    """One token of a choice as the API reports it."""

    id: int
    text: str
    logprob: float | None
    top: dict[str, float] | None
    offset: int = 0  # character offset in the choice's text (echoed prompt included)


def token_start(start: int, delta: str, token_text: str) -> int:
    """Where a token's text begins. A delta can also carry text held back from earlier tokens
    (bytes of a UTF-8 sequence that turned out invalid, shown as '\ufffd'): then the token
    itself starts after that text."""
    if token_text and "\ufffd" not in token_text and delta.endswith(token_text):
        return start + len(delta) - len(token_text)
    return start


@dataclass
class Piece:
    """Text that is final, and the token it belongs to (None for a flushed remainder)."""

    text: str
    token: Token | None


@functools.lru_cache(maxsize=16)
def _prefix_table(stop: str) -> tuple[int, ...]:
    """Knuth–Morris–Pratt: for each prefix of ``stop``, the length of its longest proper prefix
    that is also its suffix."""
    table = [0] * len(stop)
    k = 0
    for i in range(1, len(stop)):
        while k and stop[i] != stop[k]:
            k = table[k - 1]
        if stop[i] == stop[k]:
            k += 1
        table[i] = k
    return tuple(table)


class ChoiceText:
    """The generated text of one choice. Holds back text that could still start a stop
    sequence, cuts the text at the first stop sequence, and releases whole tokens in order.

    Each stop sequence has a matcher (KMP) that reads every character once and knows how much
    of the end of the text is a beginning of that stop sequence: the work per token does not
    grow with the text or with the length of the stop sequences.
    """

    def __init__(self, stops: Sequence[str], base_offset: int) -> None:
        self.stops = [s for s in stops if s]
        self._tables = [_prefix_table(s) for s in self.stops]
        self._matched = [0] * len(self.stops)  # per stop: its characters the text ends with
        self.base = base_offset
        self.text = ""
        self.pending: list[tuple[Token | None, int, int]] = []
        self.scanned = 0
        self.stopped = False

    def add(self, token: Token | None, delta: str) -> list[Piece]:
        start = len(self.text)
        self.text += delta
        if token is None:
            if not delta:
                return []
            if self.pending:  # a flushed remainder belongs to the last token not yet released
                tok, s, _ = self.pending[-1]
                self.pending[-1] = (tok, s, len(self.text))
            else:
                self.pending.append((None, start, len(self.text)))
        else:
            token.offset = self.base + token_start(start, delta, token.text)
            self.pending.append((token, start, len(self.text)))
        if self.stops:
            hit = self._find_stop()
            if hit is not None:
                self.text = self.text[:hit]
                self.stopped = True
                pieces = [
                    Piece(self.text[s : min(e, hit)], tok) for tok, s, e in self.pending if s < hit
                ]
                self.pending = []
                return pieces
            return self._release(len(self.text) - self._held())
        return self._release(len(self.text))

    def close(self) -> list[Piece]:
        return self._release(len(self.text))

    def _find_stop(self) -> int | None:
        """Where the earliest stop sequence that ends in the new text begins, if one does."""
        text, begin = self.text, self.scanned
        self.scanned = len(text)
        hits = []
        for k, (stop, table) in enumerate(zip(self.stops, self._tables, strict=True)):
            m = self._matched[k]
            for i in range(begin, len(text)):
                ch = text[i]
                while m and stop[m] != ch:
                    m = table[m - 1]
                if stop[m] == ch:
                    m += 1
                    if m == len(stop):
                        hits.append(i + 1 - m)
                        break
            self._matched[k] = m
        return min(hits) if hits else None

    def _held(self) -> int:
        """Length of the longest end of the text that is the beginning of a stop sequence."""
        return max(self._matched, default=0)

    def _release(self, safe: int) -> list[Piece]:
        pieces = []
        while self.pending and self.pending[0][2] <= safe:
            tok, s, e = self.pending.pop(0)
            pieces.append(Piece(self.text[s:e], tok))
        return pieces
