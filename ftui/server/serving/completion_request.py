"""The request of `POST /v1/completions`, parsed and checked: every field of the legacy API, each
refusal a 400 that names the field, and the bounds that keep one request's work small (prompts,
choices, stop sequences, logit_bias entries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftui.server.http import params
from ftui.server.http.errors import bad_request, shorten
from ftui.server.serving import infer

FIELDS = {
    "model",
    "prompt",
    "suffix",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "logprobs",
    "echo",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "best_of",
    "logit_bias",
    "user",
    "seed",
}
DEFAULT_PROMPT = "<|endoftext|>"  # what the original API assumed when no prompt was given
MAX_STOP = 4
MAX_STOP_CHARS = 10_000  # characters of one stop sequence
MAX_PROMPTS = 2048
MAX_CHOICES = 2048  # prompts × best_of: the sequences one request may generate
MAX_LOGIT_BIAS = 4096  # entries of logit_bias
MAX_TOKENS_LIMIT = 1 << 31
SEED_RANGE = (-(1 << 63), (1 << 64) - 1)


# ---------------------------------------------------------------- the request


@dataclass
class CompletionRequest:
    model: str
    prompts: list[str | list[int]]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    best_of: int = 1
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None
    echo: bool = False
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None
    user: str | None = None
    constraint: Any = None  # structured output, set by chat completions (grammar.Constraint)

    def sampling(self) -> infer.Sampling:
        return infer.Sampling(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=self.logit_bias,
            logprobs=self.logprobs,
            echo=self.echo,
            constraint=self.constraint,
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_prompt(body: dict[str, Any]) -> list[str | list[int]]:
    value = body.get("prompt", DEFAULT_PROMPT)
    shape = (
        "Invalid type for 'prompt': expected a string, an array of strings, an array of token "
        "ids or an array of arrays of token ids"
    )
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise bad_request(f"{shape}, but got {type(value).__name__}.", param="prompt")
    if not value:
        raise bad_request("'prompt' must not be an empty array.", param="prompt")
    if all(_is_int(v) for v in value):  # one prompt of token ids: the context bounds its length
        prompts: list[str | list[int]] = [list(value)]
    elif len(value) > MAX_PROMPTS:
        raise bad_request(
            f"'prompt' may hold at most {MAX_PROMPTS} prompts; got {len(value)}.", param="prompt"
        )
    elif all(isinstance(v, str) for v in value):
        return list(value)
    elif all(isinstance(v, list) and v and all(_is_int(t) for t in v) for v in value):
        prompts = [list(v) for v in value]
    else:
        raise bad_request(f"{shape} (non-empty, not mixed).", param="prompt")
    if any(t < 0 for p in prompts for t in p):
        raise bad_request("Token ids in 'prompt' must not be negative.", param="prompt")
    return prompts


def parse_stop(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request(
            "Invalid type for 'stop': expected a string or an array of up to 4 strings.",
            param="stop",
        )
    if len(stops) > MAX_STOP:
        raise bad_request(
            f"'stop' may hold at most {MAX_STOP} sequences; got {len(stops)}.", param="stop"
        )
    if any(not s for s in stops):
        raise bad_request("Stop sequences must not be empty strings.", param="stop")
    longest = max(map(len, stops), default=0)  # `"stop": []` means no stop sequences
    if longest > MAX_STOP_CHARS:
        raise bad_request(
            f"Stop sequences may be at most {MAX_STOP_CHARS} characters long; got {longest}.",
            param="stop",
        )
    return tuple(stops)


def parse_logit_bias(body: dict[str, Any]) -> dict[int, float]:
    value = body.get("logit_bias")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(
            "Invalid type for 'logit_bias': expected an object mapping token ids to biases.",
            param="logit_bias",
        )
    if len(value) > MAX_LOGIT_BIAS:
        raise bad_request(
            f"'logit_bias' may hold at most {MAX_LOGIT_BIAS} entries; got {len(value)}.",
            param="logit_bias",
        )
    bias: dict[int, float] = {}
    for key, amount in value.items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if token < 0 or str(token) != key.strip():
            raise bad_request(
                f"Invalid key in 'logit_bias': {shorten(key, 40)!r} is not a token id (a "
                "non-negative "
                "integer as a string).",
                param="logit_bias",
            )
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise bad_request(
                f"Invalid value in 'logit_bias' for token {token}: expected a number.",
                param="logit_bias",
            )
        if not -100 <= amount <= 100:
            raise bad_request(
                f"'logit_bias' values must be between -100 and 100; got {amount} for token "
                f"{token}.",
                param="logit_bias",
            )
        bias[token] = float(amount)
    return bias


def parse_request(body: dict[str, Any], model: str | None = None) -> CompletionRequest:
    """Check every field of a completions request body (nulls already dropped)."""
    params.reject_unknown(body, FIELDS)
    if body.get("suffix") is not None:
        raise bad_request(
            "'suffix' is not supported by this server: its models generate left to right "
            "only and cannot fill in text before a suffix. Remove 'suffix'.",
            param="suffix",
        )
    if model is None:
        model = params.string(body, "model", required=True)
    stream = bool(params.boolean(body, "stream"))
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad_request(
                "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
            )
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise bad_request(
                "'stream_options' must be an object with at most the key 'include_usage'.",
                param="stream_options",
            )
        include_usage = bool(params.boolean(options, "include_usage"))
    n = params.integer(body, "n", 1, 128) or 1
    best_of = params.integer(body, "best_of", 1, 20)
    if best_of is not None and best_of < n:
        raise bad_request(
            f"'best_of' must be greater than or equal to 'n'; got best_of={best_of}, n={n}.",
            param="best_of",
        )
    best_of = best_of or n
    if stream and best_of > n:
        raise bad_request(
            "'best_of' cannot be used with 'stream': the best candidates are only known "
            "once all are complete.",
            param="best_of",
        )
    prompts = parse_prompt(body)
    if len(prompts) * best_of > MAX_CHOICES:
        raise bad_request(
            f"This request asks for {len(prompts)} prompts × {best_of} completions each "
            f"(best_of, else n); at most {MAX_CHOICES} are generated per request. Send fewer "
            "prompts per request.",
            param="n" if best_of == n else "best_of",
        )
    max_tokens = params.integer(body, "max_tokens", 0, MAX_TOKENS_LIMIT)
    temperature = params.number(body, "temperature", 0, 2)
    top_p = params.number(body, "top_p", 0, 1)
    seed = params.integer(body, "seed", *SEED_RANGE)
    return CompletionRequest(
        model=model,
        prompts=prompts,
        max_tokens=16 if max_tokens is None else max_tokens,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        n=n,
        best_of=best_of,
        stream=stream,
        include_usage=include_usage,
        logprobs=params.integer(body, "logprobs", 0, 5),
        echo=bool(params.boolean(body, "echo")),
        stop=parse_stop(body),
        presence_penalty=params.number(body, "presence_penalty", -2, 2) or 0.0,
        frequency_penalty=params.number(body, "frequency_penalty", -2, 2) or 0.0,
        logit_bias=parse_logit_bias(body),
        seed=seed,
        user=params.string(body, "user"),
    )


# ---------------------------------------------------------------- wire shapes
