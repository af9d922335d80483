"""`ftui serve`: the local fine-tuning server (needs the `ftui[local]` extra)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

from ftui.datadir import server_data_dir

API_KEY_ENV = "FTUI_SERVE_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the local fine-tuning server (OpenAI-compatible API)",
        description="Serve the OpenAI fine-tuning API under /v1, training real models locally.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8321, help="port (default 8321; 0 picks a free one)")
    p.add_argument("--data-dir", type=Path, help="where files, jobs and models are kept")
    p.add_argument(
        "--api-key",
        help=f"require this bearer token (prefer the {API_KEY_ENV} environment variable: "
        "command lines are visible to other users)",
    )
    p.add_argument("--max-concurrent-jobs", type=int, default=1, help="jobs trained at once")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="CPU threads per training job")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ftui.server.api import ServerConfig, create_app
    except ImportError as exc:
        print(
            f"ftui serve needs the local server extra ({exc.name} is missing): "
            "pip install 'ftui[local]'",
            file=sys.stderr,
        )
        return 1
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(args.host) and not api_key:
        print(
            f"Refusing to bind {args.host} without an API key: anyone who can reach it could "
            f"train and delete models. Set {API_KEY_ENV} (or --api-key), or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    data_dir = (args.data_dir or server_data_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        data_dir=data_dir,
        api_key=api_key,
        max_concurrent_jobs=max(1, args.max_concurrent_jobs),
        device=args.device,
        threads=args.threads,
    )
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"Cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    shown_host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    url = f"http://{shown_host}:{port}/v1"

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            # Scripts and tests wait for this exact line to know the server accepts requests.
            print(f"ftui serve: listening on {url} (data in {data_dir})", flush=True)

    server = AnnouncingServer(
        uvicorn.Config(create_app(config), log_level=args.log_level, access_log=False)
    )
    server.run(sockets=[sock])
    return 0
