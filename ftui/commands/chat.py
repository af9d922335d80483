"""``ftui chat``: one turn with a message, or a simple conversation on a terminal."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ftui.commands._common import add_profile, error, print_data, print_json, run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chat",
        help="chat with a model",
        description="With MESSAGE: one turn. Without it: a conversation on a terminal (an empty "
        "line or end of input ends it), or the message read from stdin when it is not one.",
    )
    p.add_argument("-m", "--model", required=True)
    p.add_argument("message", nargs="?", metavar="MESSAGE")
    p.add_argument("-s", "--system", metavar="TEXT", help="a system message that comes first")
    p.add_argument("-M", "--max-tokens", "--max_tokens", type=int, metavar="N")
    p.add_argument("-t", "--temperature", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--no-stream", action="store_true", help="print the reply when it is whole, not as it comes"
    )
    add_profile(p)
    p.add_argument(
        "--json", action="store_true", help="print the whole response object as JSON (one turn)"
    )
    p.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    message = args.message
    repl = message is None and sys.stdin.isatty()
    if repl and args.json:
        error("--json needs a MESSAGE (or the message on stdin)")
        return 2
    if message is None and not repl:
        message = sys.stdin.read()
    messages: list[dict[str, Any]] = []
    if args.system is not None:
        messages.append({"role": "system", "content": args.system})
    params: dict[str, Any] = dict(
        max_completion_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed
    )

    async def turn(client) -> str:
        """Answer ``messages``; print the reply (or the response as JSON) and return it."""
        if args.json:
            answer = await client.chat.create(args.model, messages, **params)
            print_json(dict(answer.raw))
            return answer.text
        if args.no_stream:
            reply = (await client.chat.create(args.model, messages, **params)).text
            print_data(reply)
            return reply
        parts = []
        async for chunk in client.chat.stream(args.model, messages, **params):
            parts.append(chunk.text)
            print_data(chunk.text, end="", flush=True)
        print()
        return "".join(parts)

    async def body(client) -> int:
        if not repl:
            messages.append({"role": "user", "content": message})
            await turn(client)
            return 0
        while True:  # the transcript grows by each question and its reply
            try:
                line = input("> ")
            except EOFError:
                print()
                return 0
            if not line.strip():
                return 0
            messages.append({"role": "user", "content": line})
            reply = await turn(client)
            messages.append({"role": "assistant", "content": reply})

    return run(args, body)
