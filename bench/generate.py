"""Benchmark: ftui's decoding loop (`ftui.server.serving.infer.generate`) against
`model.generate` of transformers, on the same model object, prompt, length and sampling
settings, in one run.

    python bench/generate.py                       # bundled SmolLM2-135M, greedy and sampled
    python bench/generate.py --max-tokens 128 --repeats 5 --data-dir /tmp/ftui-bench

Both generate exactly --max-tokens new tokens (end-of-text is banned in ours by logit_bias and
held off in theirs by min_new_tokens). Ours also computes logprobs (the chosen token and the top
5 alternatives at every step), as the server does when asked for them. Printed per mode: tokens/s
(new tokens over the whole call, prefill included), the ratio ours/theirs, time to first token,
and whether the greedy outputs are identical token for token. Medians over --repeats runs, the
two implementations alternating. On a shared machine wall-clock rates are noisy; two columns
are less so: the process CPU time per token, and the time per token spent outside the model's
forward pass (the loop's own cost, the only part that differs between the two).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftui.server.hf import set_runtime_env  # noqa: E402  (imports no torch)

set_runtime_env()  # before torch is imported, as the server does

DEFAULT_PROMPT = (
    "The city council met on Tuesday to discuss the new public library. After a long debate "
    "about the budget, the members agreed that"
)


def model_dir(args: argparse.Namespace) -> Path:
    from ftui.server import basemodels

    if args.model_path:
        return Path(args.model_path)
    data_dir = Path(args.data_dir or Path(tempfile.gettempdir()) / "ftui-bench-data")
    started = time.perf_counter()
    path = basemodels.resolve(args.model, data_dir, allow_download=False)
    print(f"model: {args.model} -> {path} ({time.perf_counter() - started:.1f} s to resolve)")
    return path


class ForwardClock:
    """Time spent inside the model's forward calls, to separate the decoding loop's own cost
    (sampling, logprobs, cache handling, detokenizing) from the model's, which is the same for
    both implementations and dominates (and on a shared machine, carries most of the noise)."""

    def __init__(self, model) -> None:
        self.total = 0.0
        self._start = 0.0
        model.register_forward_pre_hook(self._pre)
        model.register_forward_hook(self._post)

    def _pre(self, *_) -> None:
        self._start = time.perf_counter()

    def _post(self, *_) -> None:
        self.total += time.perf_counter() - self._start


def run_ours(entry, prompt_ids: list[int], args, temperature: float, seed: int):
    from ftui.server.serving import infer

    sampling = infer.Sampling(
        max_tokens=args.max_tokens,
        temperature=temperature,
        top_p=args.top_p if temperature else 1.0,
        logprobs=5,
        logit_bias={eos: -100.0 for eos in entry.eos_ids},
    )
    first: list[float] = []
    tokens: list[int] = []
    args.clock.total = 0.0

    def emit(event) -> None:
        if event.kind == "text":
            if not first:
                first.append(time.perf_counter())
            tokens.extend(t.id for t in event.tokens)

    cpu = time.process_time()
    start = time.perf_counter()
    with infer.inference():
        generator = infer.make_generator(entry.device, seed)
        infer.generate(entry, infer.Prompt(list(prompt_ids)), sampling, 1, generator, emit)
    end = time.perf_counter()
    cpu = time.process_time() - cpu
    return end - start, first[0] - start, tokens, end - start - args.clock.total, cpu


def run_theirs(entry, prompt_ids: list[int], args, temperature: float, seed: int):
    import torch
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):
        def __init__(self) -> None:
            self.calls = 0
            self.first: float | None = None

        def put(self, value) -> None:
            self.calls += 1
            if self.calls == 2 and self.first is None:  # the first call carries the prompt
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    streamer = FirstToken()
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": args.top_p, "top_k": 0}
        if temperature
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    torch.manual_seed(seed)
    input_ids = torch.tensor([prompt_ids], device=entry.device)
    args.clock.total = 0.0
    cpu = time.process_time()
    start = time.perf_counter()
    with torch.inference_mode():
        out = entry.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=args.max_tokens,
            min_new_tokens=args.max_tokens,
            pad_token_id=min(entry.eos_ids),
            streamer=streamer,
            **sampling,
        )
    end = time.perf_counter()
    cpu = time.process_time() - cpu
    new = out[0, len(prompt_ids) :].tolist()
    return end - start, (streamer.first or end) - start, new, end - start - args.clock.total, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a base-model name")
    parser.add_argument("--model-path", help="a Hugging Face model directory instead")
    parser.add_argument("--data-dir", help="where the bundled model is converted (kept)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8, help="for the sampled mode")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    path = model_dir(args)
    import torch

    from ftui.server.serving import model_cache

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    entry = model_cache.load_model(path)
    print(
        f"loaded in {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}"
    )
    args.clock = ForwardClock(entry.model)
    prompt_ids = entry.encode(args.prompt)
    print(f"prompt: {len(prompt_ids)} tokens; new tokens per run: {args.max_tokens}")
    # Warm-up (first calls allocate and pick kernels), not timed.
    warm = argparse.Namespace(**{**vars(args), "max_tokens": 4})  # shares the clock
    run_ours(entry, prompt_ids, warm, 0.0, 0)
    run_theirs(entry, prompt_ids, warm, 0.0, 0)

    print(
        f"\n{'mode':<8} {'impl':<18} {'tokens/s':>9} {'TTFT ms':>8} {'total s':>8} "
        f"{'CPU ms/tok':>11} {'loop ms/tok':>12}"
    )
    for mode, temperature in (("greedy", 0.0), ("sampled", args.temperature)):
        results: dict[str, list[tuple]] = {"ours": [], "generate": []}
        for r in range(args.repeats):
            order = [("ours", run_ours), ("generate", run_theirs)]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                results[name].append(fn(entry, prompt_ids, args, temperature, seed=r))
        rates, cpu_costs = {}, {}
        for name, runs in results.items():
            assert all(len(r[2]) == args.max_tokens for r in runs), name
            total = statistics.median(r[0] for r in runs)
            ttft = statistics.median(r[1] for r in runs)
            loop = statistics.median(r[3] for r in runs) / args.max_tokens
            cpu_costs[name] = statistics.median(r[4] for r in runs) / args.max_tokens
            rates[name] = args.max_tokens / total
            label = "ours (+logprobs)" if name == "ours" else "model.generate"
            print(
                f"{mode:<8} {label:<18} {rates[name]:>9.1f} {ttft * 1000:>8.0f} {total:>8.2f} "
                f"{cpu_costs[name] * 1000:>11.1f} {loop * 1000:>12.2f}"
            )
        ratio = rates["ours"] / rates["generate"]
        same = ""
        if not temperature:
            same = (
                "; greedy tokens identical"
                if results["ours"][0][2] == results["generate"][0][2]
                else "; greedy tokens DIFFER"
            )
        by_cpu = cpu_costs["generate"] / cpu_costs["ours"]
        print(f"{mode:<8} ratio ours/generate = {ratio:.2f} (by CPU time {by_cpu:.2f}){same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
