"""Tool calls read from a model's output, whole or as it streams.

The format read is the one Qwen2.5, SmolLM2 and Hermes-style chat templates teach (and the one
encode's fallback chat format writes): each call a JSON object ``{"name": ..., "arguments": {...}}``
between ``<tool_call>`` and ``</tool_call>`` (``"parameters"`` is read as ``"arguments"``; a last
block cut short of its end tag is read too). Other formats (Llama 3's bare JSON, Mistral's
``[TOOL_CALLS]``) are not parsed: their text stays the message content.

The rule is all or nothing: if any block is not such an object, the output has no tool calls and
all of it is content, so nothing the model wrote is lost. With calls, the content is the text
outside the blocks (null when that is only whitespace).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

START, END = "<tool_call>", "</tool_call>"
BLOCK = re.compile(re.escape(START) + r"(.*?)(?:" + re.escape(END) + r"|\Z)", re.DOTALL)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def parse(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, tool calls) of a whole output; no calls when the output has none that parse."""
    calls = []
    for match in BLOCK.finditer(text):
        try:
            value = json.loads(match.group(1))
        except ValueError:
            return text, []
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return text, []
        arguments = value.get("arguments", value.get("parameters", {}))
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(
            {
                "id": new_call_id(),
                "type": "function",
                "function": {"name": value["name"], "arguments": arguments},
            }
        )
    if not calls:
        return text, []
    outside = BLOCK.sub("", text)
    return (outside if outside.strip() else None), calls


@dataclass
class ToolText:
    """A streamed output read for tool calls: ``feed`` releases the content that can no longer
    become part of a call (text before the first ``<tool_call>``, holding back what could be the
    start of that tag, and trailing whitespace, which is not content if only calls follow);
    ``finish`` parses the whole and returns the rest of the content and the calls. What is
    released plus the rest equals the content ``parse`` gives."""

    text: str = ""
    released: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, piece: str) -> str:
        self.text += piece
        if START in self.text:
            return ""
        keep = next(
            (k for k in range(min(len(START) - 1, len(self.text)), 0, -1)
             if START.startswith(self.text[-k:])),
            0,
        )  # fmt: skip
        cut = len(self.text[: len(self.text) - keep].rstrip())
        if cut <= self.released:
            return ""
        out = self.text[self.released : cut]
        self.released = cut
        return out

    def finish(self) -> str:
        content, self.calls = parse(self.text)
        return (content or "")[self.released :]
