"""`/v1/completions` against the real `ftui serve`, checked against the tiny model run in the test.

The references (`greedy_reference`, `forward_logprobs`) run the same weights with plain full
forward passes here, so the server's KV-cache loop, penalties, logit bias and logprobs are
compared with an independent computation, not with themselves.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.apihelpers import TRAIN_FAST, error_of, follow, upload
from tests.tiny_model import SEPARATOR

PROMPT = "I thought the game was"
CLASSIFY = "The movie was wonderful." + SEPARATOR
TOL = 1e-4


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def ref(tiny_model_dir):
    return Reference(tiny_model_dir)


class Reference:
    """The tiny model in this process: full forward passes, no cache."""

    def __init__(self, path: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.eos = self.tok.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tok(text)["input_ids"]

    def text(self, token_id: int) -> str:
        return self.tok.decode([token_id])

    def forward_logprobs(self, ids: list[int]):
        with self.torch.no_grad():
            logits = self.model(input_ids=self.torch.tensor([ids])).logits[0]
        return logits, self.torch.log_softmax(logits, dim=-1)

    def greedy(self, prompt: str, steps: int, presence=0.0, frequency=0.0, bias=None):
        """[(token id, raw logprob)] by the documented penalty formula, stopping at EOS."""
        ids, out, counts = self.encode(prompt), [], Counter()
        for _ in range(steps):
            logits, logp = self.forward_logprobs(ids)
            scores = logits[-1].clone()
            for token, value in (bias or {}).items():
                scores[token] += value
            for token, c in counts.items():
                scores[token] -= c * frequency + presence
            token = int(scores.argmax())
            out.append((token, float(logp[-1, token])))
            if token == self.eos:
                break
            ids.append(token)
            counts[token] += 1
        return out


def complete(client: httpx.Client, **body) -> dict:
    response = client.post("/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def stream(client: httpx.Client, path: str = "/completions", **body) -> list[dict]:
    """Every chunk of a streamed completion; checks the SSE framing and that the body ends."""
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    assert "[DONE]" not in payloads[:-1]
    return [json.loads(p) for p in payloads[:-1]]


def merge(chunks: list[dict]) -> dict[int, dict]:
    """Chunks folded per choice index the way a client would."""
    merged: dict[int, dict] = {}
    for chunk in chunks:
        assert chunk["object"] == "text_completion"
        assert chunk["id"] == chunks[0]["id"]
        assert len(chunk["choices"]) == 1
        c = chunk["choices"][0]
        m = merged.setdefault(c["index"], {"text": "", "finish_reason": None, "logprobs": None})
        assert m["finish_reason"] is None, "a chunk after the choice finished"
        m["text"] += c["text"]
        m["finish_reason"] = c["finish_reason"]
        if c["logprobs"] is not None:
            lp = m["logprobs"] = m["logprobs"] or {k: [] for k in c["logprobs"]}
            for key, values in c["logprobs"].items():
                lp[key] += values
    return merged


# ---------------------------------------------------------------- greedy, logprobs, echo


def test_greedy_matches_forward_passes_and_is_deterministic(client, ref):
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 12, "temperature": 0, "logprobs": 5}
    first = complete(client, **body)
    assert first["object"] == "text_completion" and first["id"].startswith("cmpl-")
    assert first["model"] == "tiny"
    (choice,) = first["choices"]
    expected = ref.greedy(PROMPT, 12)
    lp = choice["logprobs"]
    assert lp["tokens"] == [ref.text(t) for t, _ in expected]
    assert lp["token_logprobs"] == pytest.approx([v for _, v in expected], abs=TOL)
    assert choice["text"] == ref.tok.decode([t for t, _ in expected])
    assert choice["finish_reason"] == "length"
    assert first["usage"] == {
        "prompt_tokens": len(ref.encode(PROMPT)),
        "completion_tokens": 12,
        "total_tokens": len(ref.encode(PROMPT)) + 12,
    }
    again = complete(client, **body)
    assert again["choices"] == first["choices"]
    assert again["id"] != first["id"]


def test_top_logprobs_are_the_sorted_alternatives_of_a_forward_pass(client, ref):
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 6, "temperature": 1, "seed": 5}
    (choice,) = complete(client, **body, logprobs=3)["choices"]
    lp = choice["logprobs"]
    ids = ref.encode(PROMPT)
    steps = zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True)
    for token, logprob, top in steps:
        _, logp = ref.forward_logprobs(ids)
        values, order = logp[-1].topk(3)
        alternatives: dict[str, float] = {}
        for v, i in zip(values, order, strict=True):  # ids with the same text: the likeliest
            alternatives.setdefault(ref.text(int(i)), float(v))
        assert list(top.values()) == sorted(top.values(), reverse=True)
        assert set(alternatives) <= set(top) and len(top) <= 4
        for text, value in alternatives.items():
            assert top[text] == pytest.approx(value, abs=TOL)
        assert top[token] == pytest.approx(logprob, abs=TOL)
        # The sampled id: the one token with this text and this logprob in the forward pass.
        (chosen,) = [
            i
            for i in range(len(ref.tok))
            if ref.text(i) == token and abs(float(logp[-1, i]) - logprob) < TOL
        ]
        ids.append(chosen)


def test_echo_with_logprobs_scores_the_prompt(client, ref):
    prompt = "Café ☕ was great." + SEPARATOR
    result = complete(
        client, model="tiny", prompt=prompt, max_tokens=3, temperature=0, echo=True, logprobs=2
    )
    (choice,) = result["choices"]
    text, lp = choice["text"], choice["logprobs"]
    ids = ref.encode(prompt)
    assert text.startswith(prompt) and len(text) > len(prompt)
    assert len(lp["tokens"]) == len(ids) + 3
    assert lp["tokens"][: len(ids)] == [ref.text(i) for i in ids]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    _, logp = ref.forward_logprobs(ids)
    for i in range(1, len(ids)):
        assert lp["token_logprobs"][i] == pytest.approx(float(logp[i - 1, ids[i]]), abs=TOL)
        top = lp["top_logprobs"][i]
        assert list(top.values()) == sorted(top.values(), reverse=True) and len(top) <= 3
    offsets = lp["text_offset"]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert offsets[len(ids)] == len(prompt)  # the completion starts where the prompt ends
    for token, offset in zip(lp["tokens"], offsets, strict=True):
        if "\ufffd" not in token:  # a token that is part of a UTF-8 character decodes to '�'
            assert text[offset : offset + len(token)] == token
    # The multi-byte characters are there whole, and each starts at its first token's offset.
    cafe = next(i for i, t in enumerate(lp["tokens"]) if "\ufffd" in t)
    assert text[offsets[cafe]] == "é"
    assert result["usage"]["prompt_tokens"] == len(ids)


def test_echo_without_new_tokens_returns_the_prompt(client):
    result = complete(client, model="tiny", prompt=CLASSIFY, max_tokens=0, echo=True, logprobs=0)
    (choice,) = result["choices"]
    assert choice["text"] == CLASSIFY
    assert choice["finish_reason"] == "length"
    assert choice["logprobs"]["top_logprobs"][1] == {
        choice["logprobs"]["tokens"][1]: choice["logprobs"]["token_logprobs"][1]
    }  # logprobs=0: just the chosen token
    assert result["usage"]["completion_tokens"] == 0
    plain = complete(client, model="tiny", prompt=CLASSIFY, max_tokens=0)
    assert plain["choices"][0]["text"] == "" and plain["choices"][0]["logprobs"] is None


# ---------------------------------------------------------------- sampling controls


def test_seed_makes_sampling_reproducible(client):
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 24, "temperature": 1.0, "n": 3}
    a = complete(client, **body, seed=42)["choices"]
    b = complete(client, **body, seed=42)["choices"]
    c = complete(client, **body, seed=43)["choices"]
    assert a == b
    assert [x["text"] for x in a] != [x["text"] for x in c]
    assert len({x["text"] for x in a}) == 3  # the n samples are not copies of one another
    unseeded = [complete(client, **body)["choices"][0]["text"] for _ in range(2)]
    assert unseeded[0] != unseeded[1]


def test_top_p_zero_and_low_temperature_act_greedy(client):
    greedy = complete(client, model="tiny", prompt=PROMPT, max_tokens=10, temperature=0)
    nucleus = complete(client, model="tiny", prompt=PROMPT, max_tokens=10, top_p=0, seed=1)
    cold = complete(client, model="tiny", prompt=PROMPT, max_tokens=10, temperature=1e-4, seed=1)
    text = greedy["choices"][0]["text"]
    assert nucleus["choices"][0]["text"] == text
    assert cold["choices"][0]["text"] == text


@pytest.mark.parametrize(
    ("presence", "frequency"), [(2.0, 0.0), (0.0, 1.5), (0.7, 0.4), (-2.0, -2.0)]
)
def test_penalties_follow_the_documented_formula(client, ref, presence, frequency):
    result = complete(
        client,
        model="tiny",
        prompt=PROMPT,
        max_tokens=16,
        temperature=0,
        logprobs=0,
        presence_penalty=presence,
        frequency_penalty=frequency,
    )
    expected = ref.greedy(PROMPT, 16, presence, frequency)
    assert result["choices"][0]["logprobs"]["tokens"] == [ref.text(t) for t, _ in expected]


def test_penalties_change_repetition_in_the_documented_direction(client):
    def distinct(**penalties) -> int:
        tokens = complete(
            client, model="tiny", prompt=PROMPT, max_tokens=20, temperature=0, logprobs=0,
            **penalties,
        )["choices"][0]["logprobs"]["tokens"]  # fmt: skip
        return len(set(tokens))

    plain = distinct()
    assert distinct(presence_penalty=2) > plain
    assert distinct(frequency_penalty=2) > plain
    assert distinct(presence_penalty=-2, frequency_penalty=-2) <= plain


def test_logit_bias_forces_and_bans_tokens(client, ref):
    forced = ref.encode(" red")[0]
    result = complete(
        client, model="tiny", prompt=PROMPT, max_tokens=5, logit_bias={str(forced): 100}, seed=0
    )
    assert result["choices"][0]["text"] == ref.text(forced) * 5
    first = ref.greedy(PROMPT, 1)[0][0]
    banned = complete(
        client, model="tiny", prompt=PROMPT, max_tokens=4, temperature=0, logprobs=0,
        logit_bias={str(first): -100},
    )["choices"][0]["logprobs"]["tokens"]  # fmt: skip
    expected = ref.greedy(PROMPT, 4, bias={first: -100})
    assert banned == [ref.text(t) for t, _ in expected] and banned[0] != ref.text(first)


def test_eos_ends_a_choice_with_finish_reason_stop(client, ref):
    eos = str(ref.eos)
    result = complete(
        client, model="tiny", prompt=PROMPT, max_tokens=8, logit_bias={eos: 100}, logprobs=1
    )
    (choice,) = result["choices"]
    assert choice["text"] == "" and choice["finish_reason"] == "stop"
    assert choice["logprobs"]["tokens"] == []  # the end-of-text token is not part of the text
    assert result["usage"]["completion_tokens"] == 1


# ---------------------------------------------------------------- stop sequences


PENALISED = {
    "model": "tiny",
    "prompt": PROMPT,
    "max_tokens": 24,
    "temperature": 0,
    "logprobs": 0,
    "presence_penalty": 2,  # so that the random tiny model does not repeat one token
}


def _penalised(client, **extra) -> dict:
    return complete(client, **PENALISED, **extra)["choices"][0]


def test_stop_sequences_inside_one_token_and_across_tokens(client):
    full = _penalised(client)
    text, tokens = full["text"], full["logprobs"]["tokens"]
    starts = full["logprobs"]["text_offset"]

    # A stop that lies inside one multi-character token, and one that spans two tokens.
    def whole(i: int) -> bool:  # the token's own text is in the text at its offset
        return text[starts[i] : starts[i] + len(tokens[i])] == tokens[i] != "\ufffd"

    k = next(
        i
        for i in range(2, len(tokens))
        if whole(i) and len(tokens[i]) >= 3 and text.count(tokens[i][1:3]) == 1
    )
    inside = tokens[k][1:3]
    j = next(
        i
        for i in range(2, len(tokens) - 1)
        if whole(i)
        and whole(i + 1)
        and starts[i] + len(tokens[i]) == starts[i + 1]
        and len(tokens[i + 1]) >= 2
        and text.count(tokens[i][-1] + tokens[i + 1][:2]) == 1
    )
    across = tokens[j][-1] + tokens[j + 1][:2]
    for stop, cut in [(inside, starts[k] + 1), (across, starts[j + 1] - 1)]:
        assert text.index(stop) == cut
        for stop_param in (stop, ["zzzz", stop]):
            result = _penalised(client, stop=stop_param)
            assert result["text"] == text[:cut]
            assert result["finish_reason"] == "stop"
            assert stop not in result["text"]
            streamed = merge(stream(client, **PENALISED, stop=stop_param))[0]
            assert streamed["text"] == text[:cut]
            assert streamed["finish_reason"] == "stop"
            assert streamed["logprobs"] == result["logprobs"]
    never = _penalised(client, stop=["\x00never", "zzzz"])
    assert never["text"] == text and never["finish_reason"] == "length"


# ---------------------------------------------------------------- n, lists, best_of


def test_list_prompts_are_prompt_major(client, ref):
    prompts = [PROMPT, "Honestly, the show is"]
    result = complete(client, model="tiny", prompt=prompts, n=2, max_tokens=5, temperature=0)
    choices = result["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    for i, prompt in enumerate(prompts):
        expected = ref.tok.decode([t for t, _ in ref.greedy(prompt, 5)])
        assert [c["text"] for c in choices[2 * i : 2 * i + 2]] == [expected, expected]
    prompt_tokens = sum(len(ref.encode(p)) for p in prompts)
    assert result["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 20,
        "total_tokens": prompt_tokens + 20,
    }
    # Token-id prompts are the same prompts.
    as_ids = complete(
        client, model="tiny", prompt=[ref.encode(p) for p in prompts], max_tokens=5, temperature=0
    )
    assert [c["text"] for c in as_ids["choices"]] == [choices[0]["text"], choices[2]["text"]]


def test_best_of_returns_the_most_likely_candidates(client):
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 6, "seed": 7, "logprobs": 0}
    candidates = complete(client, **body, n=5)["choices"]
    assert {c["finish_reason"] for c in candidates} == {"length"}  # six tokens each
    best = complete(client, **body, n=2, best_of=5)
    means = sorted(
        (sum(c["logprobs"]["token_logprobs"]) / 6 for c in candidates), reverse=True
    )  # the same seed draws the same five candidates
    got = [sum(c["logprobs"]["token_logprobs"]) / 6 for c in best["choices"]]
    assert got == pytest.approx(means[:2], abs=1e-6)
    assert [c["index"] for c in best["choices"]] == [0, 1]
    assert best["usage"]["completion_tokens"] == 30  # all five candidates were generated


# ---------------------------------------------------------------- streaming


def test_streamed_chunks_concatenate_to_the_non_streamed_answer(client):
    body = {
        "model": "tiny",
        "prompt": [PROMPT, "Café ☕"],
        "n": 2,
        "max_tokens": 10,
        "seed": 11,
        "logprobs": 2,
        "echo": True,
        "presence_penalty": 0.5,
    }
    whole = complete(client, **body)
    chunks = stream(client, **body)
    merged = merge(chunks)
    assert sorted(merged) == [0, 1, 2, 3]
    for choice in whole["choices"]:
        got = merged[choice["index"]]
        assert got["text"] == choice["text"]
        assert got["finish_reason"] == choice["finish_reason"] == "length"
        assert got["logprobs"] == choice["logprobs"]
    # One chunk for the echoed prompt, one per token, one with the finish reason, per choice.
    per_choice = Counter(c["choices"][0]["index"] for c in chunks)
    assert set(per_choice.values()) == {1 + 10 + 1}
    assert all("usage" not in c for c in chunks)


def test_stream_usage_and_the_engines_route(client):
    body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0}
    chunks = stream(
        client, "/engines/tiny/completions", **body, stream_options={"include_usage": True}
    )
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])
    whole = client.post("/engines/tiny/completions", json={**body, "model": None}).json()
    assert merge(chunks[:-1])[0]["text"] == whole["choices"][0]["text"]
    assert whole["model"] == "tiny" and whole["usage"] == chunks[-1]["usage"]


# ---------------------------------------------------------------- fine-tuned models


def test_fine_tuned_model_completions_then_deleted(client, server, ref, make_training_file):
    training = upload(client, make_training_file(n=40))
    job = client.post(
        "/fine-tunes", json={"training_file": training["id"], "model": "tiny", **TRAIN_FAST}
    ).json()
    # While the job is not finished, its id is not a model yet: a clear error, not a hang.
    early = error_of(client.post("/completions", json={"model": job["id"], "prompt": "x"}), 404)
    assert early["code"] == "model_not_ready" and early["param"] == "model"
    follow(client, job["id"])
    name = client.get(f"/fine-tunes/{job['id']}").json()["fine_tuned_model"]
    assert name

    body = {"prompt": CLASSIFY, "max_tokens": 3, "temperature": 0, "logprobs": 1, "echo": True}
    tuned = complete(client, model=name, **body)["choices"][0]
    base = complete(client, model="tiny", **body)["choices"][0]
    # The fine-tuned weights, not the base's: compare with a forward pass of the saved model.
    (weights,) = [
        p
        for p in (server.data_dir / "models").iterdir()
        if (p / "config.json").exists() and name.replace(":", "_") in p.name
    ]
    ids = ref.encode(CLASSIFY)
    tuned_ref = Reference(weights)
    _, logp = tuned_ref.forward_logprobs(ids)
    expected = [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
    got = tuned["logprobs"]["token_logprobs"][1 : len(ids)]
    assert got == pytest.approx(expected, abs=TOL)
    assert got != pytest.approx(base["logprobs"]["token_logprobs"][1 : len(ids)], abs=1e-2)
    engines = client.post(f"/engines/{quote(name, safe='')}/completions", json=body).json()
    assert engines["choices"][0]["text"] == tuned["text"]

    named = error_of(client.post("/completions", json={"model": job["id"], "prompt": "x"}), 404)
    assert name in named["message"]

    assert client.delete(f"/models/{quote(name, safe='')}").status_code == 200
    gone = error_of(client.post("/completions", json={"model": name, "prompt": "x"}), 404)
    assert gone["code"] == "model_not_found" and gone["param"] == "model"


# ---------------------------------------------------------------- concurrency


def test_concurrent_requests_give_the_answers_they_give_alone(client):
    bodies = [
        {"model": "tiny", "prompt": PROMPT, "max_tokens": 30, "temperature": 0, "logprobs": 2},
        {"model": "ada", "prompt": "Honestly, the show is", "max_tokens": 30, "seed": 3, "n": 2},
        {**PENALISED, "stop": "zz"},
        {"model": "tiny", "prompt": [PROMPT, "Hi"], "max_tokens": 20, "seed": 9, "echo": True},
    ] * 2
    alone = [complete(client, **body)["choices"] for body in bodies]
    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(lambda body: complete(client, **body)["choices"], bodies))
        streamed = list(pool.map(lambda body: merge(stream(client, **body)), bodies))
    assert together == alone
    for chunks, choices in zip(streamed, alone, strict=True):
        assert [chunks[c["index"]]["text"] for c in choices] == [c["text"] for c in choices]
