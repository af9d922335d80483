"""Training and serving share one runtime and one encoder: a fine-tuned model is served the very
prompt tokens it was trained on, and both sides agree on end-of-text, start token and context."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
from tokenizers import processors

from ftui.server import hf
from ftui.server.training import encode
from ftui.server.training import train as T
from tests.apihelpers import follow, upload
from tests.tiny_model import EOS, build_tokenizer, make_sentiment_examples


def test_served_prompt_tokens_are_the_tokens_training_used(server_factory, tmp_path):
    server = server_factory()
    examples = make_sentiment_examples(16, seed=3)
    # A prompt that ends in the end-of-text the user wrote, and an empty prompt: the two cases
    # where training and serving used to treat a prompt differently.
    examples[0] = {"prompt": examples[0]["prompt"] + EOS, "completion": " positive"}
    examples[1] = {"prompt": "", "completion": " negative"}
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        file = upload(client, path)
        job = client.post(
            "/fine-tunes", json={"training_file": file["id"], "model": "ada", "n_epochs": 1}
        ).json()
        follow(client, job["id"])
        done = client.get(f"/fine-tunes/{job['id']}").json()
        assert done["status"] == "succeeded", done
        (model_dir,) = (server.data_dir / "models").iterdir()

        # The training side, recomputed on the fine-tuned model's directory.
        loaded = hf.load(model_dir, "cpu")
        model, tokenizer, specials = loaded.model.eval(), loaded.tokenizer, loaded.specials
        eos_id = tokenizer.convert_tokens_to_ids(EOS)
        for example in examples[:4]:
            trained = T.encode_example(tokenizer, specials, example, loaded.context)
            prompt_ids = trained.ids[: trained.completion.index(True)]
            if example is examples[0]:
                assert prompt_ids[-1] == eos_id  # the written end-of-text stays in the prompt
            if example is examples[1]:
                assert prompt_ids == [specials.start_id]

            answer = client.post(
                "/completions",
                json={
                    "model": done["fine_tuned_model"],
                    "prompt": example["prompt"],
                    "echo": True,
                    "logprobs": 0,
                    "max_tokens": 0,
                },
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["usage"]["prompt_tokens"] == len(prompt_ids)
            logprobs = body["choices"][0]["logprobs"]
            # The start token of an empty prompt conditions the model but is not echoed.
            shown = prompt_ids[1:] if example["prompt"] == "" else prompt_ids
            assert logprobs["tokens"] == [
                tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in shown
            ]
            # Same ids, same model: the served log-probabilities are those of the trained ids.
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([prompt_ids])).logits[0].log_softmax(-1)
            expected = [logp[j, prompt_ids[j + 1]].item() for j in range(len(prompt_ids) - 1)]
            served = logprobs["token_logprobs"]
            if example["prompt"] != "":
                assert served[0] is None  # nothing precedes the first token
                served = served[1:]
            assert served == pytest.approx(expected, abs=1e-4)


def test_a_tokenizer_appended_end_of_text_is_dropped_but_a_written_one_stays():
    tokenizer = build_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, eos_id)]
    )
    specials = hf.specials(tokenizer)
    assert specials.appends_eos and specials.eos_ids == {eos_id}
    plain = tokenizer("Hello there", add_special_tokens=False)["input_ids"]
    assert encode.prompt_ids(tokenizer, specials, "Hello there") == plain
    assert encode.prompt_ids(tokenizer, specials, "Hello there" + EOS) == plain + [eos_id]
    pair = encode.encode_legacy(tokenizer, specials, "Hello there", " positive")
    assert pair.ids[: len(plain)] == plain and pair.ids[len(plain)] != eos_id


def test_training_end_of_text_is_one_serving_stops_at(tiny_model_dir: Path):
    loaded = hf.load(tiny_model_dir, "cpu")
    assert loaded.specials.eos_id in loaded.specials.eos_ids
    # The context is the smallest stated limit, and the saved tokenizer states it.
    assert loaded.context == loaded.tokenizer.model_max_length == 256


def test_an_unavailable_device_is_an_error_not_a_fallback():
    assert hf.pick_device("cpu") == "cpu"
    assert hf.pick_device(None) == hf.pick_device("auto")
    with pytest.raises(hf.DeviceUnavailable, match="expected auto, cpu or cuda"):
        hf.pick_device("tpu")
    if torch.cuda.is_available():
        assert hf.pick_device("cuda") == "cuda"
    else:
        with pytest.raises(hf.DeviceUnavailable, match="no CUDA GPU"):
            hf.pick_device("cuda")
