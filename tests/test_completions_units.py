"""The pieces of the completions engine on their own: the model cache, the text that streaming and
non-streaming share (stop sequences, UTF-8), and request defaults."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftui.server.serving import infer, model_cache
from ftui.server.serving.completion_request import parse_request

# ---------------------------------------------------------------- the model cache


def test_cache_is_lru_bounded_by_count(tiny_model_dir):
    cache = model_cache.ModelCache(max_models=2, max_bytes=1 << 40, device="cpu")
    a = cache.get("a", tiny_model_dir)
    cache.get("b", tiny_model_dir)
    assert cache.get("a", tiny_model_dir) is a  # a hit, and now the most recent
    cache.get("c", tiny_model_dir)
    assert cache.keys() == ["a", "c"]  # b was the least recently used


def test_cache_is_bounded_by_memory(tiny_model_dir):
    one = model_cache.load_model(tiny_model_dir).nbytes
    cache = model_cache.ModelCache(max_models=10, max_bytes=int(one * 2.5), device="cpu")
    for key in "abcd":
        cache.get(key, tiny_model_dir)
    assert cache.keys() == ["c", "d"]
    assert cache.used_bytes == 2 * one
    # A model larger than the whole budget still loads (alone), rather than failing.
    small = model_cache.ModelCache(max_models=10, max_bytes=1, device="cpu")
    small.get("a", tiny_model_dir)
    small.get("b", tiny_model_dir)
    assert small.keys() == ["b"]


def test_concurrent_requests_for_one_model_load_it_once(tiny_model_dir, monkeypatch):
    loads = []
    real = model_cache.load_model
    gate = threading.Event()

    def counting(path, key=None, device="cpu"):
        loads.append(key)
        gate.wait(30)  # hold the first load until every thread has asked
        return real(path, key, device)

    monkeypatch.setattr(model_cache, "load_model", counting)
    cache = model_cache.ModelCache(device="cpu")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", tiny_model_dir)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(30)
    assert loads == ["k"]
    assert len(results) == 4 and all(r is results[0] for r in results)


def test_discard_drops_matching_entries(tiny_model_dir):
    cache = model_cache.ModelCache(device="cpu")
    cache.get(("fine-tuned", "m1", "/x"), tiny_model_dir)
    cache.get(("base", "/y"), tiny_model_dir)
    assert cache.discard(lambda key: key[0] == "fine-tuned") == 1
    assert cache.keys() == [("base", "/y")]


def test_server_import_does_not_import_torch():
    code = (
        "import sys, ftui.server.http.api, ftui.server.serving.completions;"
        "import ftui.server.serving.infer;"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- text


def _token(text: str) -> infer.Token:
    return infer.Token(0, text, None, None)


def _feed(stops, parts):
    state = infer.ChoiceText(stops, base_offset=0)
    released = []
    for part in parts:
        released.append([p.text for p in state.add(_token(part), part)])
    return state, released


def test_text_that_could_start_a_stop_is_held_back():
    state, released = _feed(["END"], ["a", "E", "N", "b"])
    # "E" and "EN" could begin "END": held until "b" shows they do not.
    assert released == [["a"], [], [], ["E", "N", "b"]]
    assert not state.stopped and state.text == "aENb"


def test_stop_across_tokens_cuts_the_text_and_drops_later_tokens():
    state = infer.ChoiceText(["END"], base_offset=5)
    first = state.add(_token("xE"), "xE")
    assert [p.text for p in first] == []  # "E" could begin "END"
    second = state.add(_token("NDy"), "NDy")
    assert [p.text for p in second] == ["x"]  # the token that began the stop, cut before it
    assert [p.token.offset for p in second] == [5]
    assert state.stopped and state.text == "x"


def test_stop_inside_one_token():
    state = infer.ChoiceText(["lo w"], base_offset=0)
    pieces = state.add(_token("hello world"), "hello world")
    assert [p.text for p in pieces] == ["hel"] and state.stopped


def test_earliest_of_several_stops_wins():
    state = infer.ChoiceText(["world", "lo"], base_offset=0)
    pieces = state.add(_token("hello world"), "hello world")
    assert "".join(p.text for p in pieces) == "hel"


class _NaiveChoiceText(infer.ChoiceText):
    """The plain definition: search the whole text for each stop, try every tail length."""

    def _find_stop(self):
        hits = [i for s in self.stops if (i := self.text.find(s)) >= 0]
        return min(hits) if hits else None

    def _held(self):
        for size in range(len(self.text), 0, -1):
            if any(s.startswith(self.text[-size:]) and len(s) > size for s in self.stops):
                return size
        return 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text("ab", min_size=1, max_size=6), min_size=1, max_size=4),
    st.lists(st.text("abc", max_size=5), max_size=12),
)
def test_stop_matching_agrees_with_the_plain_definition(stops, deltas):
    fast, naive = infer.ChoiceText(stops, 0), _NaiveChoiceText(stops, 0)
    for delta in deltas:
        got = [(p.text, p.token.text) for p in fast.add(_token(delta), delta)]
        want = [(p.text, p.token.text) for p in naive.add(_token(delta), delta)]
        assert got == want and fast.stopped == naive.stopped and fast.text == naive.text
        if fast.stopped:
            break


def test_a_long_stop_sequence_costs_no_more_per_token():
    import time

    state = infer.ChoiceText(["b" + "a" * 9999], base_offset=0)
    started = time.perf_counter()
    for _ in range(4000):
        assert [p.text for p in state.add(_token("aa"), "aa")] == ["aa"]
    # ~0.01 s; trying every end of the text against the stop took ~10 s (quadratic).
    assert time.perf_counter() - started < 1.0


def test_detokenizer_holds_partial_utf8(tiny_model_dir):
    entry = model_cache.load_model(tiny_model_dir)
    ids = entry.encode("é☕x")
    detok = infer.Detokenizer(entry.decode, [])
    deltas = [detok.push(i) for i in ids]
    assert "".join(deltas) == "é☕x"
    assert all("\ufffd" not in d for d in deltas)
    assert "" in deltas  # some token ended inside a character and waited for the next


# ---------------------------------------------------------------- request defaults


def test_request_defaults_follow_the_reference():
    req = parse_request({"model": "m"})
    assert req.prompts == ["<|endoftext|>"]
    assert (req.max_tokens, req.temperature, req.top_p, req.n, req.best_of) == (16, 1, 1, 1, 1)
    assert (req.logprobs, req.echo, req.stop, req.stream) == (None, False, (), False)
    assert parse_request({"model": "m", "stop": "x"}).stop == ("x",)
    assert parse_request({"model": "m", "n": 2}).best_of == 2
    assert parse_request({"prompt": [[1, 2], [3]]}, model="m").prompts == [[1, 2], [3]]


@pytest.mark.parametrize("prompt", ["", "Hi"])
def test_prompt_preparation(tiny_model_dir, prompt):
    entry = model_cache.load_model(tiny_model_dir)
    prepared = infer.prepare_prompt(entry, prompt)
    if prompt:
        assert prepared.ids == entry.encode(prompt) and prepared.hidden == 0
    else:  # an empty prompt is conditioned on the start token, which is not echoed
        assert prepared.ids == [entry.specials.start_id] and prepared.hidden == 1


def test_budget_checks_name_the_field(tiny_model_dir, monkeypatch):
    entry = model_cache.load_model(tiny_model_dir)
    prompts = [infer.Prompt([5] * 40), infer.Prompt([5] * 10)]
    infer.check_budget(entry, prompts, 216, rows=2)  # 40 + 216 = the whole context: fine
    with pytest.raises(infer.RequestError) as context:
        infer.check_budget(entry, prompts, 217, rows=2)
    assert context.value.param == "max_tokens" and "257 tokens (40 in your prompt" in str(
        context.value
    )
    # 1024 bytes of key/value cache per token and row (2 layers × 2 × 4 heads × 16 × fp32).
    monkeypatch.setenv("FTUI_KV_LIMIT_MB", str(50 * 1024 / 2**20))
    infer.check_budget(entry, prompts, 10, rows=1)
    with pytest.raises(infer.RequestError) as kv:
        infer.check_budget(entry, prompts, 10, rows=2)
    assert kv.value.param == "n"
    with pytest.raises(infer.RequestError) as scoring:
        infer.check_budget(entry, prompts, 0, rows=1, prompt_logprobs=True)
    assert scoring.value.param == "prompt"


def test_shutdown_cancels_running_generations(tiny_model_dir, tmp_path):
    from ftui.server.jobs.store import Store
    from ftui.server.serving.completion_request import CompletionRequest
    from ftui.server.serving.completions import CompletionService, Generation

    service = CompletionService(Store(tmp_path), device="cpu")
    entry = service.models.get("tiny", tiny_model_dir)
    request = CompletionRequest(model="tiny", prompts=["Hi"], max_tokens=250, logit_bias={2: -100})
    job = Generation("cmpl-test", entry, [infer.prepare_prompt(entry, "Hi")], request)
    started = threading.Event()

    def emit(i, event):
        started.set()

    service._submit(job, lambda: job.run(emit))
    assert started.wait(30)
    service.shutdown()  # returns once the worker has stopped
    assert job.done.is_set() and job.cancelled and job.released < 250


def test_deleted_fine_tuned_models_are_unloaded(tiny_model_dir, tmp_path):
    import shutil

    from ftui.server.jobs.store import ModelRecord, Store
    from ftui.server.serving.completions import CompletionService

    store = Store(tmp_path / "data")
    weights = shutil.copytree(tiny_model_dir, store.models_dir / "m")
    store.add_model(ModelRecord("tiny:ft-personal-x", 0, "org", None, "tiny", str(weights)))
    service = CompletionService(store, device="cpu")
    key, path = service._resolve("tiny:ft-personal-x")
    service._load("tiny:ft-personal-x", key, path)
    service.forget_deleted()
    assert service.models.keys() == [key]  # still listed: kept
    store.delete_model("tiny:ft-personal-x")
    service.forget_deleted()
    assert service.models.keys() == []
