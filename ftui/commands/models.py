"""Model commands: ``ftui models``, ``ftui delete-model`` and ``ftui complete``."""

from __future__ import annotations

import argparse
import sys

from ftui.commands._common import (
    add_json,
    add_profile,
    error,
    print_data,
    print_json,
    print_table,
    run,
    say,
    stamp,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list base and fine-tuned models")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("delete-model", help="delete a fine-tuned model")
    p.add_argument("model")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_delete_model)

    p = subparsers.add_parser("complete", help="complete a prompt with a model")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-p", "--prompt", required=True, help="the prompt ('-' reads it from stdin)")
    p.add_argument("-M", "--max-tokens", "--max_tokens", type=int, metavar="N")
    p.add_argument("-t", "--temperature", type=float)
    p.add_argument("-P", "--top-p", "--top_p", type=float, metavar="P")
    p.add_argument("-n", "--n", type=int, help="how many completions")
    p.add_argument("--logprobs", type=int, metavar="N", help="also return the top N logprobs")
    p.add_argument("--echo", action="store_true", help="include the prompt in the text")
    p.add_argument("--stop", action="append", metavar="TEXT", help="stop sequence (repeatable)")
    p.add_argument("--presence-penalty", "--presence_penalty", type=float, metavar="X")
    p.add_argument("--frequency-penalty", "--frequency_penalty", type=float, metavar="X")
    p.add_argument("--best-of", "--best_of", type=int, metavar="N")
    p.add_argument(
        "--logit-bias",
        "--logit_bias",
        action="append",
        metavar="TOKEN=BIAS",
        help="token id and bias, e.g. 50256=-100 (repeatable)",
    )
    p.add_argument("--suffix", help="text that comes after the completion")
    p.add_argument("--seed", type=int)
    p.add_argument("--user")
    p.add_argument("--stream", action="store_true", help="print the text as it is generated")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_complete)


def cmd_models(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        models = await client.models.list()
        if args.json:
            print_json(models)
        else:
            print_table(
                ["ID", "OWNED BY", "CREATED", "FINE-TUNED"],
                [
                    (
                        m.id,
                        m.owned_by,
                        stamp(m.created) if m.created else "-",
                        "yes" if m.is_fine_tuned else "",
                    )
                    for m in models
                ],
            )
        return 0

    return run(args, body)


def cmd_delete_model(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        result = await client.models.delete(args.model)
        if args.json:
            print_json(result)
        else:
            say(f"Deleted {result.id}")
        return 0

    return run(args, body)


def _logit_bias(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        token, sep, bias = item.partition("=")
        try:
            if not sep or not token.strip().isdigit():
                raise ValueError
            out[token.strip()] = float(bias)
        except ValueError:
            raise SystemExit(
                f"ftui complete: --logit-bias wants TOKEN_ID=BIAS, not {item!r}"
            ) from None
    return out


def cmd_complete(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    params = dict(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        n=args.n,
        logprobs=args.logprobs,
        echo=True if args.echo else None,
        stop=args.stop,
        presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty,
        logit_bias=_logit_bias(args.logit_bias),
        suffix=args.suffix,
        seed=args.seed,
        user=args.user,
    )
    if args.stream and (args.n or 1) > 1 and not args.json:
        error("--stream prints one completion; use --json to stream several")
        return 2
    if args.stream and args.best_of:
        error("--best-of cannot be streamed")
        return 2

    async def body(client) -> int:
        if args.stream:
            async for chunk in client.completions.stream(args.model, prompt, **params):
                if args.json:
                    print_json(chunk.raw)
                else:
                    print_data(chunk.text, end="", flush=True)
            if not args.json:
                print()
            return 0
        completion = await client.completions.create(
            args.model, prompt, best_of=args.best_of, **params
        )
        if args.json:
            print_json(dict(completion.raw))
            return 0
        many = len(completion.choices) > 1
        for choice in completion.choices:
            if many:
                print(f"===== Completion {choice.index} =====")
            print_data(choice.text)
        return 0

    return run(args, body)
