"""`ftui prepare-data` (placeholder registration; the command is being built)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prepare-data", help="check, explain and fix a training file")
    p.add_argument("file")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("ftui prepare-data: not available yet")
