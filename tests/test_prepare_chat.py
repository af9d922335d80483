"""`prepare-data` on chat files with tools and weights: the report's figures (examples, tokens
per example against the context, weighted turns, tool usage, the hosted limits) and a written
file that keeps each line's functions and uploads."""

from __future__ import annotations

import json

from ftui.prepare import INFO, WARNING, analyze, apply
from ftui.records import validate_jsonl
from tests.test_records_chat import GOOD, OLDER

PLAIN = {"messages": [{"role": "user", "content": "abcd"}, {"role": "assistant", "content": "xy"}]}


def chars(texts: list[str]) -> list[int]:
    """A 'tokenizer' of one token per character, so every count can be checked by hand."""
    return [len(t) for t in texts]


def write(tmp_path, rows: list[dict]):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_chat_report_figures(tmp_path):
    invalid = {**PLAIN, "tools": "nope"}
    rows = [GOOD, OLDER, PLAIN, invalid, {**PLAIN, "id": 7}]
    report = analyze(write(tmp_path, rows), tokenizer=chars, context=100)

    assert report.finding("invalid_examples").rows == (4,)
    assert "field tools must be a non-empty list" in report.finding("invalid_examples").message
    assert report.finding("extra_columns").details["columns"] == ["id"]  # tools etc. belong
    turns = report.finding("weighted_turns")
    assert turns.kind == INFO
    # GOOD: a call, a weight-0 reply, a reply; OLDER: a call, a reply; PLAIN twice: a reply.
    assert turns.details == {"assistant_turns": 7, "trained": 6, "weight_0": 1}
    assert "1 with weight 0" in turns.message
    tools = report.finding("tool_usage")
    assert tools.details == {"examples_with_tools": 2, "tool_calls": 2, "tool_messages": 2}

    # Tokens: every text (contents, names, calls, the functions as JSON), 3 per message and 3
    # for the reply, as the hosted cookbook counted.
    plain = len("abcd") + len("xy") + 3 * 3
    good = (
        len(json.dumps(GOOD["tools"]))
        + len("Use the tools.Weather in Paris?ann")
        + len('get_weather{"city": "Paris"}')
        + len("21It is 21 degrees.Be brief.ThanksWelcome.")
        + 3 * 9
    )
    older = (
        len(json.dumps(OLDER["functions"]))
        + len("Weather in Oslo?")
        + len('get_weather{"city": "Oslo"}')
        + len("3get_weather3 degrees.")
        + 3 * 5
    )
    stats = report.finding("tokens").details
    assert stats["max"] == good and stats["total"] == good + older + 2 * plain
    over = report.finding("over_context")
    assert over.rows == (1, 2) and over.details == {"context": 100}  # good and older > 100
    hosted = report.finding("hosted_min_examples")
    assert hosted.kind == WARNING and hosted.details == {"n": 4, "minimum": 10}
    assert report.finding("hosted_example_tokens") is None

    out = apply(report, ["duplicates"])  # necessary fixes, the duplicate, not over_context
    written = [json.loads(line) for line in out[0].read_text().splitlines()]
    assert written == [GOOD, OLDER, PLAIN]  # tools, functions, parallel_tool_calls kept
    with open(out[0], "rb") as fh:
        assert validate_jsonl(fh).examples == 3


def test_examples_over_the_hosted_context_are_reported(tmp_path):
    long = {"messages": [{"role": "user", "content": "x" * 70_000}, PLAIN["messages"][1]]}
    rows = [PLAIN] * 11 + [long]
    report = analyze(write(tmp_path, [{**r, "n": i} for i, r in enumerate(rows)]), tokenizer=chars)
    hosted = report.finding("hosted_example_tokens")
    assert hosted.kind == WARNING and hosted.rows == (12,)
    assert "65,536 tokens" in hosted.message
    assert report.finding("hosted_min_examples") is None
    assert report.finding("tool_usage") is None  # no functions: nothing to say
