"""Pilot tests of the completion console against the real server: streamed output coloured by
probability with the alternatives of the token under the cursor, every parameter sent, bad
parameters refused, side by side base vs fine-tuned, stop, and the prompt history on disk."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from textual.app import App

from ftui.screens.console import ConsoleScreen
from ftui.types import Model
from ftui.widgets.console_history import FILE_NAME, HistoryScreen, PromptHistory
from ftui.widgets.logprob_view import LogprobView, bucket, percent, show_token
from ftui.widgets.param_panel import ParamPanel, format_stop, parse_stop
from tests.tiny_model import SEPARATOR
from tests.tui_support import (
    SIZES,
    job_json,
    make_app,
    make_offline_app,
    no_workers,
    screen_text,
    settle_offline,
    wait_for,
    wait_for_screen,
)

PROMPT = "I thought the movie was wonderful!" + SEPARATOR


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """The prompt history goes under the user data dir: a fresh one per test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path / "xdg-data" / "ftui"


def api_complete(server, **body) -> dict:
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        r = c.post("/completions", json=body)
        assert r.status_code == 200, r.text
        return r.json()


def set_params(screen: ConsoleScreen, **values) -> None:
    screen.params.set_values({k: str(v) for k, v in values.items()})


async def open_console(pilot, model=None, compare_with=None) -> ConsoleScreen:
    pilot.app.open_console(model=model, compare_with=compare_with)
    screen = await wait_for_screen(pilot, ConsoleScreen)
    await wait_for(pilot, lambda: "tiny" in screen.model_ids, message="model list")
    return screen


async def finished(pilot, screen: ConsoleScreen, side: str = "a") -> LogprobView:
    view = screen._view(side)
    await wait_for(
        pilot,
        lambda: not screen.streaming and view.border_subtitle.startswith(("✔", "✖", "⊘")),
        timeout=60,
        message=f"completion {side}",
    )
    return view


async def test_streamed_completion_coloured_by_probability(server, tmp_path, data_home):
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_console(pilot, model="tiny")
        assert screen.model_of("a") == "tiny"
        view = screen._view("a")
        chunks: list[str] = []
        add = view.add
        view.add = lambda choice, text, *a, **k: (chunks.append(text), add(choice, text, *a, **k))

        # a bad value is refused with the field named, and nothing is sent
        set_params(screen, temperature=3)
        screen.prompt.text = "The movie"
        await pilot.press("ctrl+j")
        assert screen.last_request is None and not screen.streaming
        await wait_for(pilot, lambda: "✖ temperature: between 0" in screen_text(app))

        # every parameter of the panel goes into the request
        set_params(
            screen,
            max_tokens=6,
            temperature=0,
            top_p=0.9,
            n=1,
            logprobs=3,
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=0.25,
            stop="zzz, \\n\\n",
        )
        await pilot.press("ctrl+j")
        await finished(pilot, screen)
        assert screen.last_request["params"] == {
            "max_tokens": 6, "temperature": 0.0, "top_p": 0.9, "n": 1, "logprobs": 3,
            "seed": 7, "presence_penalty": 0.5, "frequency_penalty": 0.25,
            "stop": ["zzz", "\n\n"],
        }  # fmt: skip
        assert view.border_subtitle.startswith("✔ done")

        # what was streamed is what the server answers in one piece for the same request
        whole = api_complete(
            server, model="tiny", prompt="The movie", **screen.last_request["params"]
        )["choices"][0]
        assert view.text_of(0) == whole["text"]
        assert [t.text for t in view.tokens] == whole["logprobs"]["tokens"]
        assert len([c for c in chunks if c]) == len(whole["logprobs"]["tokens"]) > 1  # streamed

        # each token is styled by its probability bucket (colour + underline/bold below 50 %)
        text = view.build_text()
        styles = {str(span.style) for span in text.spans}
        expected = {str(view._style(f"logprob--{bucket(t.logprob)}")) for t in view.tokens}
        assert expected <= styles
        for t in view.tokens:
            assert t.top is not None and 1 <= len(t.top) <= 3

        # the token under the cursor: its probability and the top alternatives
        view.focus()
        await pilot.press("right", "right")
        tok = view.tokens[1]
        info = screen_text(app)
        assert f"token 2/{len(view.tokens)}" in info
        assert f"“{show_token(tok.text)}” {percent(tok.logprob)}" in info
        best = max(tok.top.items(), key=lambda kv: kv[1])
        assert f"alts: “{show_token(best[0])}” {percent(best[1])}" in info  # the best alternative

        # the prompt went into the history on disk
        await wait_for(pilot, lambda: (data_home / FILE_NAME).exists())
        entry = json.loads((data_home / FILE_NAME).read_text().splitlines()[-1])
        assert entry["prompt"] == "The movie" and entry["model"] == "tiny"
        assert entry["params"]["max_tokens"] == "6"


async def test_side_by_side_base_vs_fine_tuned(server, tmp_path, trained_model):
    model, _job = trained_model
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_console(pilot, model="tiny", compare_with=model)
        assert screen.side_by_side and screen.model_of("b") == model
        screen.prompt.text = PROMPT
        set_params(screen, max_tokens=1, temperature=0, logprobs=2)
        await pilot.press("ctrl+j")
        base, tuned = await finished(pilot, screen, "a"), await finished(pilot, screen, "b")
        params = {"max_tokens": 1, "temperature": 0, "logprobs": 2}
        for view, name in ((base, "tiny"), (tuned, model)):
            want = api_complete(server, model=name, prompt=PROMPT, **params)["choices"][0]
            assert view.text_of(0) == want["text"]
            assert view.border_title == name
        # the fine-tuned model learnt to answer with a label; the base model did not
        label = tuned.text_of(0)
        assert label in (" positive", " negative")
        assert base.text_of(0) != label
        text = screen_text(app)
        assert model[:10] in text and label.strip() in text

        # f8 hides the parameters (more room for two panes); the values stay
        await pilot.press("f8")
        assert not screen.params.display or not screen.params.region.width
        assert screen._view("a").region.width > 30
        await pilot.press("f8")
        assert screen.params.region.width

        # ctrl+t leaves side by side: only one pane is sent to
        await pilot.press("ctrl+t")
        assert not screen.side_by_side
        await pilot.press("ctrl+j")
        await finished(pilot, screen, "a")
        assert tuned.text_of(0) == label  # untouched
        assert screen.last_request["models"] == {"a": "tiny"}


async def test_stop_and_history(server, tmp_path, data_home):
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_console(pilot, model="tiny")
        screen.prompt.text = "first prompt"
        set_params(screen, max_tokens=1)
        await pilot.press("ctrl+j")
        await finished(pilot, screen)

        # a long generation stops at ctrl+g
        screen.prompt.text = "second prompt"
        # 16 choices of 240 tokens (EOS, token 2, banned): seconds of work even on a fast box
        set_params(screen, max_tokens=240, n=16, logprobs="", logit_bias="2:-100")
        # (the action, not the key: Pilot.press waits for the app to be idle, i.e. the end)
        screen.action_send()
        view = screen._view("a")
        assert screen.streaming
        await pilot.press("ctrl+g")  # long before 16 × 240 tokens can be done
        await wait_for(pilot, lambda: not screen.streaming)
        assert view.border_subtitle == "⊘ stopped"
        assert screen.last_request["params"]["logit_bias"] == {"2": -100.0}
        assert not all(view.finish_reason(i) for i in range(16))  # cut short

        # alt+up steps back through the history, alt+down returns to the draft
        screen.prompt.text = "a draft"
        await pilot.press("alt+up")
        assert screen.prompt.text == "second prompt"
        assert screen.params._input("max_tokens").value == "240"
        await pilot.press("alt+up")
        assert screen.prompt.text == "first prompt"
        assert screen.params._input("max_tokens").value == "1"
        await pilot.press("alt+down", "alt+down")
        assert screen.prompt.text == "a draft"

    # a new app reads the history back from disk; ctrl+r searches it
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_console(pilot, model="tiny")
        await wait_for(pilot, lambda: len(screen.history.entries) == 2)
        await pilot.press("ctrl+r")
        picker = await wait_for_screen(pilot, HistoryScreen)
        await pilot.press(*"first")
        assert len(picker.shown) == 1
        await pilot.press("enter")
        await wait_for_screen(pilot, ConsoleScreen)
        assert screen.prompt.text == "first prompt"


async def test_console_with_the_server_unreachable(tmp_path):
    app = make_app("http://127.0.0.1:9/v1", tmp_path)  # nothing listens on port 9
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_console(model="tiny")
        screen = await wait_for_screen(pilot, ConsoleScreen)
        await wait_for(pilot, lambda: app.online is False, message="offline")
        screen.prompt.text = "hello"
        set_params(screen, max_tokens=1)
        await pilot.press("ctrl+j")
        view = await finished(pilot, screen)
        assert view.border_subtitle.startswith("✖") and not view.tokens
        await wait_for(pilot, lambda: "STALE" in screen_text(app))
        assert screen.model_of("a") == "tiny"  # the screen is intact and usable


# ---------------------------------------------------------------- units


def test_parse_and_format_stop():
    assert parse_stop("") is None
    assert parse_stop("###") == ["###"]
    assert parse_stop("###, \\n\\n, a\\,b") == ["###", "\n\n", "a,b"]
    assert parse_stop("\\s") == [" "]
    with pytest.raises(ValueError, match="at most 4"):
        parse_stop("a,b,c,d,e")
    with pytest.raises(ValueError, match="empty"):
        parse_stop("a,,b")
    with pytest.raises(ValueError, match="unknown escape"):
        parse_stop("\\q")
    for stops in (["###"], ["\n", "a,b", " x"], [" "]):
        assert parse_stop(format_stop(stops)) == stops


def test_buckets_and_percent():
    assert bucket(None) is None
    assert bucket(math.log(0.95)) == "high"
    assert bucket(math.log(0.6)) == "mid"
    assert bucket(math.log(0.3)) == "low"
    assert bucket(math.log(0.01)) == "vlow"
    assert percent(0.0) == "100%"
    assert percent(math.log(0.5)) == "50.0%"


def test_history_file(tmp_path):
    h = PromptHistory(tmp_path / "h.jsonl", max_entries=3)
    h.load()
    for i in range(8):
        h.add(f"p{i}", model="m", params={"n": "1"})
    assert h.add("p7", model="m", params={"n": "1"}) is None  # repeat of the newest
    (tmp_path / "h.jsonl").open("a").write("not json\n")
    again = PromptHistory(tmp_path / "h.jsonl", max_entries=3)
    assert [e["prompt"] for e in again.load()] == ["p5", "p6", "p7"]
    # more than twice the limit of lines: rewritten down to the limit
    assert len((tmp_path / "h.jsonl").read_text().splitlines()) == 3


async def test_logprob_view_offsets_and_param_panel():
    class Harness(App):
        def compose(self):
            yield LogprobView("t", id="v")
            yield ParamPanel()

    app = Harness()
    async with app.run_test(size=(80, 30)) as pilot:
        view = app.query_one(LogprobView)
        # text released without a token of its own is still shown, tokens keep their place
        view.add(0, "Hel", ["Hel"], [-0.1], [{"Hel": -0.1}], [0])
        view.add(0, "lo\ufffd!", ["lo", "!"], [-2.0, None], [None, None], [3, 6])
        assert view.text_of(0) == "Hello\ufffd!"
        assert [(t.text, t.start) for t in view.tokens] == [("Hel", 0), ("lo", 3), ("!", 6)]
        assert view.build_text().plain == "Hello\ufffd!"
        view.add(0, "\x1b[2J\x0e", ["\x1b[2J\x0e"], [-1.0], [None], [7])
        assert view.build_text().plain == "Hello\ufffd!␛[2J␎"  # no escape reaches the terminal
        view.add(1, "second", [], [], [], [])
        assert "── choice 2 ──" in view.build_text().plain
        view.focus()
        await pilot.press("end")
        assert view.cursor_token.text == "\x1b[2J\x0e"
        await pilot.press("left")
        assert view.cursor_token.text == "!"
        assert "“!” —  no alternatives" in screen_text(app)  # no logprob sent for it
        panel = app.query_one(ParamPanel)
        panel._input("n").value = "0"
        await pilot.pause()
        assert "✖ n: at least 1" in screen_text(app)
        with pytest.raises(Exception, match="n: at least 1"):
            panel.params()
        panel._input("n").value = "2"
        await pilot.press("tab")
        assert panel.params()["n"] == 2 and "echo" not in panel.params()
        panel.query_one("#param-echo").value = True
        assert panel.params()["echo"] is True
        assert "[x] echo prompt" in screen_text(app)


# ---------------------------------------------------------------- snapshot (offline, cache)

TUNED = "ft:ada:personal:alpha:00000001"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.usefixtures("utc")
def test_console_snapshot(snap_compare, tmp_path, size, data_home):
    app = make_offline_app(tmp_path, jobs=[job_json(1, "succeeded", suffix="alpha")])
    app.cache.put_models([Model.from_api({"id": m}) for m in ("ada", "babbage", TUNED)])
    # a fixed output in each pane: tokens of every probability bucket, one with alternatives
    outputs = {
        "a": [(" The", -0.05), (" film", -0.6), (" was", -1.2), (" long", -2.5), (".", -0.01)],
        "b": [(" positive", -0.02), ("\n", -0.4)],
    }

    async def run_before(pilot):
        pilot.app.open_console(model="ada", compare_with=TUNED)
        screen = await wait_for_screen(pilot, ConsoleScreen)
        await settle_offline(
            pilot, lambda app: no_workers(app, "console-models") and TUNED in screen.model_ids
        )
        screen.prompt.text = "I thought the movie was wonderful!\n\n###\n\n"
        screen.prompt.cursor_blink = False
        for side, toks in outputs.items():
            view = screen._view(side)
            view.clear(screen.model_of(side))
            offset = 0
            for text, lp in toks:
                top = {text: lp, " other": lp - 1.5, " else": lp - 2.5}
                view.add(0, text, [text], [lp], [top], [offset])
                offset += len(text)
            view.set_status(f"✔ done · stop · {len(toks)} tokens · 0.1s")
        screen._view("a").focus()
        await pilot.press("right", "right", "right")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
