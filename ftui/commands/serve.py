"""`ftui serve`: the local fine-tuning server (needs the `ftui[local]` extra)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from ftui.datadir import server_data_dir
from ftui.loopback import is_loopback_host
from ftui.server import API_KEY_ENV


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
    limits = p.add_argument_group("limits and browser protection")
    limits.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host header names NAME (repeatable; '*' for any). "
        "localhost, IP addresses and the bound address are always accepted",
    )
    limits.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages of ORIGIN (such as http://localhost:3000) call the API, with CORS "
        "(repeatable; '*' for any). Other cross-origin browser requests are refused",
    )
    limits.add_argument(
        "--max-request-mb",
        type=_positive,
        default=1.0,
        metavar="MB",
        help="largest request body, uploads aside, in MiB (default 1)",
    )
    limits.add_argument(
        "--max-upload-mb",
        type=_positive,
        default=512.0,
        metavar="MB",
        help="largest file upload in MiB (default 512)",
    )
    limits.add_argument(
        "--request-timeout",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="how long a client may pause while sending a request's headers or body, and how "
        "long a new connection may stay silent (default 30)",
    )
    p.set_defaults(func=run)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn. Made with IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on
    accepted connections only when the listening socket says it is TCP, and without it every
    keep-alive request waits ~40 ms for Nagle's algorithm and the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ftui.server.http.api import ServerConfig, create_app
        from ftui.server.http.guard import MIB, EdgeConfig
        from ftui.server.http.protocol import MAX_HEAD_BYTES, GuardedH11Protocol
    except ImportError as exc:
        print(
            f"ftui serve needs the local server extra ({exc.name} is missing): "
            "pip install 'ftui[local]'",
            file=sys.stderr,
        )
        return 1
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback_host(args.host) and not api_key:
        print(
            f"Refusing to bind {args.host} without an API key: anyone who can reach it could "
            f"train and delete models. Set {API_KEY_ENV} (or --api-key), or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    if args.device == "cuda":  # asked for by name: refuse at once rather than at first use
        from ftui.server import hf

        try:
            hf.pick_device("cuda")
        except hf.DeviceUnavailable as exc:
            print(f"Cannot use --device cuda: {exc}", file=sys.stderr)
            return 2
    try:
        data_dir = (args.data_dir or server_data_dir()).expanduser().resolve()
    except RuntimeError:  # `~user/…` for a user this machine does not have
        print(f"Cannot use --data-dir {args.data_dir}: no such home directory.", file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    edge = EdgeConfig.for_bind(
        args.host,
        extra_hosts=tuple(args.allowed_host),
        origins=tuple(args.allowed_origin),
        api_key=api_key,
        max_request_bytes=int(args.max_request_mb * MIB),
        max_upload_bytes=int(args.max_upload_mb * MIB),
        request_timeout=args.request_timeout,
    )
    config = ServerConfig(
        data_dir=data_dir,
        edge=edge,
        max_concurrent_jobs=max(1, args.max_concurrent_jobs),
        device=args.device,
        threads=args.threads,
    )
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"Cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    shown_host = f"[{args.host}]" if sock.family == socket.AF_INET6 else args.host
    url = f"http://{shown_host}:{port}/v1"

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            # Scripts and tests wait for this exact line to know the server accepts requests.
            print(f"ftui serve: listening on {url} (data in {data_dir})", flush=True)

    # h11 explicitly (not httptools, should it be installed): the limits and answers for
    # oversized or stalled requests live in our h11 protocol class.
    protocol = type("Protocol", (GuardedH11Protocol,), {"request_timeout": args.request_timeout})
    server = AnnouncingServer(
        uvicorn.Config(
            create_app(config),
            log_level=args.log_level,
            access_log=False,
            http=protocol,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
    )
    server.run(sockets=[sock])
    return 0
