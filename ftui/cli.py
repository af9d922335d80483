"""The `ftui` entry point: subcommands are registered by modules under `ftui.commands`.

Each command module exposes `register(subparsers)` and imports its heavy dependencies inside the
function it runs, so `ftui --help` and the TUI start without pandas, torch or the server stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

COMMAND_MODULES = (
    "ftui.commands.serve",
    "ftui.commands.prepare_data",
    "ftui.commands.jobs",
    "ftui.commands.files",
    "ftui.commands.models",
    "ftui.commands.chat",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftui",
        description="Fine-tune language models from the terminal (OpenAI-style fine-tuning API).",
    )
    parser.add_argument(
        "--profile",
        dest="app_profile",
        metavar="NAME",
        help="with no command: open the terminal app on this profile",
    )
    parser.add_argument(
        "--no-mouse",
        action="store_true",
        help="with no command: do not capture the mouse (keeps the terminal's own selection)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return run_app(args.app_profile, mouse=not args.no_mouse)
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """ftui's own warnings (a corrupt cache set aside, say) are for the user: one plain line on
    stderr, without the source location Python adds. Other warnings are shown as usual."""
    if category.__module__.split(".")[0] != "ftui":
        text = warnings.formatwarning(message, category, filename, lineno, line)
        (file or sys.stderr).write(text)
        return
    from ftui.commands._common import say

    say(f"ftui: warning: {message}", file=sys.stderr)


def run_app(profile: str | None = None, *, mouse: bool = True) -> int:
    """``ftui`` with no command: the terminal app (Textual is imported only here)."""
    from ftui.config import ConfigError

    try:
        from ftui.app import FtuiApp

        app = FtuiApp(profile)
    except ConfigError as exc:
        from ftui.commands._common import error

        error(str(exc))  # the config file's text may hold control characters
        return 2
    app.run(mouse=mouse)
    return int(app.return_code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
