"""The one definition of a valid chat example (records.py): tools, weights and the older
function forms, checked line by line; the real server's upload names the line and the field."""

from __future__ import annotations

import copy
import json

import httpx
import pytest

from ftui.records import check_record, validate_jsonl
from tests.apihelpers import error_of, upload

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}
GOOD = {
    "messages": [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}], "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21"},
        {"role": "assistant", "content": "It is 21 degrees.", "weight": 0},
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "Welcome.", "weight": 1},
    ],
    "tools": [WEATHER],
    "parallel_tool_calls": False,
}
OLDER = {
    "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {"role": "function", "name": "get_weather", "content": "3"},
        {"role": "assistant", "content": "3 degrees."},
    ],
    "functions": [WEATHER["function"]],
}


def edited(path: str, value: object = None, delete: bool = False) -> dict:
    """GOOD with one field (a dotted path with [i] indexes) set or deleted."""
    example = copy.deepcopy(GOOD)
    keys = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    target = example
    for key in keys[:-1]:
        target = target[key]
    if delete:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return example


BAD = [
    (edited("messages[2].tool_calls[0].function.arguments", "{city"),
     "messages[2].tool_calls[0].function.arguments is not valid JSON"),
    (edited("messages[2].tool_calls[0].function.arguments", {"city": "Paris"}),
     "messages[2].tool_calls[0].function.arguments must be a string of JSON"),
    (edited("messages[2].tool_calls[0].function.arguments", "[1]"),
     "messages[2].tool_calls[0].function.arguments must be a JSON object"),
    (edited("messages[2].tool_calls[0].function.name", "get_time"),
     "messages[2].tool_calls[0].function.name 'get_time' is not one of the functions"),
    (edited("messages[2].tool_calls[0].type", "custom"),
     'messages[2].tool_calls[0].type must be "function"'),
    (edited("messages[2].tool_calls[0].id", delete=True),
     "messages[2].tool_calls[0].id must be a non-empty string"),
    (edited("messages[4].weight", 2), "messages[4].weight must be 0 or 1 (found 2)"),
    (edited("messages[4].weight", True), "messages[4].weight must be 0 or 1 (found true)"),
    (edited("messages[6].weight", 0), "messages[6].weight is allowed on assistant messages only"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b",
                                                         "weight": 0}]},
     "has no assistant message with weight 1"),
    (edited("messages[3].tool_call_id", "call_9"),
     "messages[3].tool_call_id 'call_9' answers no open tool call"),
    (edited("messages[3].tool_call_id", delete=True),
     "messages[3].tool_call_id must be a non-empty string"),
    (edited("messages[3]", {"role": "user", "content": "?"}),
     "messages[3]: the tool calls of the assistant message before it are not all answered"),
    (edited("messages[1]", {"role": "tool", "tool_call_id": "x", "content": "1"}),
     "messages[1].role: a tool message must answer a preceding assistant message"),
    (edited("messages[0].role", "narrator"),
     'messages[0].role is "narrator"; expected one of system, developer, user, assistant, tool'),
    (edited("messages[1].content", [{"type": "image_url", "image_url": {"url": "x"}}]),
     'messages[1].content[0] is a part of type "image_url"; only text parts'),
    (edited("messages[1].content", [{"type": "text", "text": 3}]),
     "messages[1].content[0].text must be a string"),
    (edited("messages[6].content", None), "messages[6].content must be a string or a list"),
    (edited("messages[1].name", ""), "messages[1].name must be a non-empty string"),
    (edited("tools[0].type", "retrieval"), 'tools[0].type must be "function"'),
    (edited("tools[0].function.name", "get weather"), "tools[0].function.name must be a func"),
    (edited("tools", [WEATHER, WEATHER]), "tools[1].function.name 'get_weather' is defined twice"),
    (edited("parallel_tool_calls", "no"), "parallel_tool_calls must be true or false"),
    (edited("messages[2].tool_calls", [GOOD["messages"][2]["tool_calls"][0]] * 2),
     "parallel_tool_calls to false"),
    ({**OLDER, "tools": [WEATHER]}, "has both tools and functions"),
    ({**OLDER, "messages": [*OLDER["messages"][:2], {"role": "function", "content": "3"},
                            OLDER["messages"][3]]},
     "messages[2].name must be a non-empty string"),
]  # fmt: skip


def test_tools_weights_and_the_older_function_forms_are_valid():
    assert check_record(GOOD) is None
    assert check_record(OLDER) is None
    # A call needs no answer when the conversation ends with it (it teaches the call).
    assert check_record({**GOOD, "messages": GOOD["messages"][:3]}) is None
    # Parallel calls are allowed unless the line says otherwise.
    two = edited("messages[2].tool_calls", [GOOD["messages"][2]["tool_calls"][0]] * 2)
    two["messages"][2]["tool_calls"][1] = {**two["messages"][2]["tool_calls"][1], "id": "call_2"}
    del two["parallel_tool_calls"]
    assert "tool_call_id 'call_2'" in check_record(two)  # now both must be answered
    two["messages"].insert(4, {"role": "tool", "tool_call_id": "call_2", "content": "22"})
    assert check_record(two) is None
    assert "parallel_tool_calls to false" in check_record({**two, "parallel_tool_calls": False})


@pytest.mark.parametrize(("example", "words"), BAD)
def test_invalid_chat_examples_name_the_field(example, words):
    problem = check_record(example)
    assert problem is not None and words in problem, problem


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def test_upload_accepts_chat_lines_with_tools_and_weights(client, tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(OLDER) + "\n")
    assert upload(client, path)["status"] == "processed"
    with open(path, "rb") as fh:
        assert validate_jsonl(fh).examples == 2


@pytest.mark.parametrize("case", [0, 6, 12, 15])  # arguments, weight, unanswered call, parts
def test_upload_names_the_line_and_the_field(client, tmp_path, case):
    example, words = BAD[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(example) + "\n")
    before = client.get("/files").json()["data"]
    with open(path, "rb") as fh:
        response = client.post(
            "/files", data={"purpose": "fine-tune"}, files={"file": ("bad.jsonl", fh)}
        )
    error = error_of(response, 400)
    assert "line 2 " in error["message"] and words in error["message"], error
    assert error["param"] == "file"
    assert client.get("/files").json()["data"] == before


def test_a_tool_call_file_fine_tunes_on_the_real_server(client, tmp_path):
    """Upload → current-dialect job → a model: a file of calls, tool results, weight-0 and
    trained replies goes through the one check and the one encoder."""
    from tests.apihelpers import follow

    rows = []
    for city in ["Paris", "Rome", "Oslo", "Lima"]:
        row = json.loads(json.dumps(GOOD).replace("Paris", city))
        rows += [
            row,
            {**OLDER, "messages": [{"role": "system", "content": city}, *OLDER["messages"]]},
        ]
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    file_id = upload(client, path)["id"]
    hyperparameters = {"n_epochs": 1, "batch_size": 4}
    created = client.post(
        "/fine_tuning/jobs",
        json={"model": "tiny", "training_file": file_id, "hyperparameters": hyperparameters},
    )
    assert created.status_code == 200, created.text
    follow(client, created.json()["id"])
    done = client.get(f"/fine_tuning/jobs/{created.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["fine_tuned_model"] and done["trained_tokens"] > 0


def test_a_conversation_to_continue_needs_no_assistant_message():
    """check_chat(training=False) is the same rule for a chat request's messages."""
    from ftui.records import check_chat

    question = {"messages": GOOD["messages"][:2], "tools": [WEATHER]}
    assert "no assistant message" in check_chat(question)
    assert check_chat(question, training=False) is None
    called = {**question, "messages": GOOD["messages"][:3]}
    assert check_chat(called) is None  # a file may end with a call: it teaches the call
    assert "not all answered (no answer for tool_call_id 'call_1')" in check_chat(
        called, training=False
    )  # a request must give its result
    assert "messages[1].content[0].text" in check_chat(
        edited("messages[1].content", [{"type": "text"}]), training=False
    )
