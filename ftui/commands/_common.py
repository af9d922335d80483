"""What the scripting commands share: ``--profile``/``--json``, opening the client, errors.

Only the standard library is imported here; the client (httpx) is imported when a command runs.

Strings from a server or a file (names, ids, messages) can hold control characters; commands
write them through ``say``, ``print_table``, ``print_json`` and ``error``, which never let an
escape sequence reach the terminal (see ftui.textsafe).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from ftui.fmt import fmt_time
from ftui.textsafe import encodable, one_line, safe_json, visible


def add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        metavar="NAME",
        help="profile from the config file (default: see 'ftui --help' / docs/client.md)",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def stamp(ts: int | None) -> str:
    """Unix seconds as local ``YYYY-MM-DD HH:MM:SS`` (as the legacy CLI printed events)."""
    return fmt_time(ts, seconds=True, missing="-")


def print_json(value: Any) -> None:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif isinstance(value, list):
        value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
    print(safe_json(value, indent=2))


def say(
    text: str = "", *, file: TextIO | None = None, end: str = "\n", flush: bool = False
) -> None:
    """``print`` for text that holds strings from a server or a file: control characters are
    shown as symbols (tab and newline kept)."""
    print(visible(text), file=file or sys.stdout, end=end, flush=flush)


def print_data(text: str, *, end: str = "\n", flush: bool = False) -> None:
    """Data the user asked for (a completion, a results file): exact when stdout is a file or a
    pipe, control characters shown as symbols when it is a terminal."""
    out = sys.stdout
    print(visible(text) if out.isatty() else encodable(text), end=end, flush=flush, file=out)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[one_line("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def error(message: str) -> None:
    say(f"Error: {message}", file=sys.stderr)


def retry_notice(notice: Any) -> None:
    say(
        f"ftui: {notice.what}: {notice.error}; retrying in {notice.delay:.1f}s",
        file=sys.stderr,
        flush=True,
    )


async def open_client(args: argparse.Namespace, **kwargs: Any):
    from ftui.client import connect

    kwargs.setdefault("on_retry", retry_notice)
    return await connect(getattr(args, "profile", None), **kwargs)


def run(
    args: argparse.Namespace, body: Callable[[Any], Awaitable[int | None]], **client_kwargs: Any
) -> int:
    """Open the profile's client, run ``body(client)``, and print API errors as ``Error:`` lines."""
    from ftui.client import APIError
    from ftui.config import ConfigError

    async def main() -> int | None:
        client = await open_client(args, **client_kwargs)
        async with client:
            return await body(client)

    try:
        return int(asyncio.run(main()) or 0)
    except APIError as exc:
        error(str(exc))
        return 1
    except ConfigError as exc:
        error(str(exc))
        return 2
    except OSError as exc:
        error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return 1


def profile_flag(args: argparse.Namespace) -> str:
    """``--profile NAME `` to repeat in suggested commands ('' for the default profile)."""
    return f"--profile {one_line(args.profile)} " if getattr(args, "profile", None) else ""
