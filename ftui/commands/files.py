"""File commands: ``ftui files`` and ``ftui upload``."""

from __future__ import annotations

import argparse
import sys

from ftui.commands._common import add_json, add_profile, print_json, print_table, run, say, stamp


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("files", help="list uploaded files, newest first")
    p.add_argument("--purpose", help="only files with this purpose (e.g. fine-tune)")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_files)

    p = subparsers.add_parser("upload", help="upload a training or validation file")
    p.add_argument("path")
    p.add_argument("--purpose", default="fine-tune", help="default: fine-tune")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_upload)


def cmd_files(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        files = await client.files.list(args.purpose)
        if args.json:
            print_json(files)
        else:
            print_table(
                ["ID", "PURPOSE", "BYTES", "CREATED", "FILENAME"],
                [(f.id, f.purpose, f.bytes, stamp(f.created_at), f.filename) for f in files],
            )
        return 0

    return run(args, body)


class _Progress:
    """``Upload progress:  42%`` on one stderr line, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, sent: int, total: int) -> None:
        percent = 100 * sent // total if total else 100
        if self.enabled and percent != self.shown:
            self.shown = percent
            end = "\n" if sent >= total else ""
            print(
                f"\rUpload progress: {percent:3d}% ({sent}/{total} bytes)",
                end=end,
                file=sys.stderr,
                flush=True,
            )


def cmd_upload(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        f = await client.files.create(args.path, args.purpose, on_progress=_Progress())
        if args.json:
            print_json(f)
        else:
            say(f"Uploaded file from {args.path}: {f.id}")
        return 0

    return run(args, body)
