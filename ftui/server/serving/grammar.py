"""Structured output: decoding constrained by a grammar, so that a `response_format` of
`json_object` or `json_schema` always yields JSON that parses (and validates against the schema).

The grammar engine is llguidance (its Hugging Face tokenizer integration): before each token
is chosen, every token that cannot continue a valid document is masked out of the scores; each
chosen token then advances that choice's matcher. Once the document is complete, only the end of
text is allowed, so the answer ends with `finish_reason: "stop"` (or `length`, cut at its cap,
when the cap comes first). llguidance and torch are imported inside functions only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ftui.server.hf import import_torch
from ftui.server.serving.model_cache import LoadedModel

ANY_OBJECT = {"type": "object"}  # what `json_object` asks for: some JSON object
_lock = threading.Lock()


class GrammarError(ValueError):
    """A schema the engine cannot turn into a grammar (the message names the problem)."""


def _engine_tokenizer(entry: LoadedModel) -> Any:
    import llguidance.hf

    with _lock:  # built once per loaded model (it walks the vocabulary), and dropped with it
        if entry.grammar_tokenizer is None:
            entry.grammar_tokenizer = llguidance.hf.from_tokenizer(
                entry.tokenizer, n_vocab=entry.vocab_size
            )
        return entry.grammar_tokenizer


def compile_schema(entry: LoadedModel, schema: dict[str, Any]) -> Constraint:
    """A constraint for JSON documents valid against ``schema``; GrammarError when the schema
    cannot be compiled."""
    import llguidance

    tokenizer = _engine_tokenizer(entry)
    try:
        # Compact JSON: with free whitespace a small model can emit newlines until its cap.
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), overrides={"whitespace_flexible": False}
        )
    except (ValueError, TypeError) as exc:
        raise GrammarError(str(exc)) from None
    problem = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)  # "" when it is fine
    if problem:
        raise GrammarError(str(problem))
    return Constraint(tokenizer, grammar, entry.vocab_size)


def compile_tool_calls(
    entry: LoadedModel, tools: Sequence[dict[str, Any]], parallel: bool
) -> Constraint:
    """A constraint for an answer made only of ``<tool_call>{"name", "arguments"}</tool_call>``
    blocks (one, or with ``parallel`` one or more), each calling one of ``tools`` with
    arguments valid against its parameters (``tool_choice`` required or named)."""
    import llguidance

    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool["function"]["name"]},
                "arguments": tool["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    schema = {"anyOf": calls} if len(calls) > 1 else calls[0]
    schema["x-guidance"] = {"whitespace_flexible": False}
    more = ' ("\\n" call)*' if parallel else ""
    lark = (
        f"start: call{more}\n"
        'call: "<tool_call>\\n" body "\\n</tool_call>"\n'
        f"body: %json {json.dumps(schema)}\n"
    )
    tokenizer = _engine_tokenizer(entry)
    try:
        grammar = llguidance.LLMatcher.grammar_from_lark(lark)
    except (ValueError, TypeError) as exc:
        raise GrammarError(str(exc)) from None
    problem = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
    if problem:
        raise GrammarError(str(problem))
    return Constraint(tokenizer, grammar, entry.vocab_size)


@dataclass
class Constraint:
    """A compiled grammar; ``start(n)`` gives the per-choice state of one generation."""

    tokenizer: Any
    grammar: str
    vocab: int

    def start(self, n: int) -> Matchers:
        import llguidance

        matchers = [llguidance.LLMatcher(self.tokenizer, self.grammar) for _ in range(n)]
        return Matchers(matchers, self.vocab)


@dataclass
class Matchers:
    """The grammar state of each choice of one generation."""

    matchers: list[Any]
    vocab: int
    _mask: Any = field(default=None, repr=False)

    def apply(self, scores: Any, choices: Sequence[int]) -> Any:
        """``scores`` (one row per choice in ``choices``) with every token the grammar does not
        allow next set to -inf."""
        import llguidance.torch

        torch = import_torch()
        if self._mask is None or self._mask.shape[0] < len(choices):
            self._mask = llguidance.torch.allocate_token_bitmask(len(choices), self.vocab)
        for row, c in enumerate(choices):
            llguidance.torch.fill_next_token_bitmask(self.matchers[c], self._mask, row)
        mask = self._mask[: len(choices)].to(scores.device)
        # Unpack the 32-bit words into one allowed/not flag per token.
        bits = (mask[:, :, None] >> torch.arange(32, device=scores.device, dtype=torch.int32)) & 1
        allowed = bits.reshape(len(choices), -1)[:, : scores.shape[-1]].bool()
        return scores.masked_fill(~allowed, float("-inf"))

    def advance(self, choices: Sequence[int], tokens: Sequence[int]) -> None:
        for c, token in zip(choices, tokens, strict=True):
            self.matchers[c].consume_token(token)
