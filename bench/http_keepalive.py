#!/usr/bin/env python3
"""Request latency of `ftui serve` on keep-alive and on fresh connections, beside a reference.

The reference is a minimal Starlette app that uvicorn binds itself (`uvicorn.run(host, port)`),
answering the same path with a JSON body of the same size. Both servers run in their own
processes on 127.0.0.1; requests alternate between them so they share the machine's load.

What it shows: on a keep-alive connection a request should cost about what it costs on a fresh
one, or less. A server whose accepted sockets lack TCP_NODELAY pays Nagle's algorithm plus the
client's delayed ACK (~40 ms on Linux) on every keep-alive request, because uvicorn writes the
headers and the body of a response separately.

    .venv/bin/python bench/http_keepalive.py                 # ~10 s
    .venv/bin/python bench/http_keepalive.py --requests 200 --path /v1/models
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
READY = "ftui serve: listening on "
BURST = 50

REFERENCE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
body = open(sys.argv[3], "rb").read()
async def answer(request):
    return Response(body, media_type="application/json")
app = Starlette(routes=[Route(sys.argv[2], answer)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ftui(data_dir: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftui", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,  # `python -m` imports from the working directory first: this checkout's ftui
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(READY):
            return proc, line[len(READY) :].split()[0].removesuffix("/v1")
    raise SystemExit("ftui serve did not start")


def start_reference(path: str, body_file: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", REFERENCE, str(port), path, str(body_file)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the reference server did not start")


def burst_ms(client: httpx.Client, url: str, count: int, fresh: bool) -> list[float]:
    """`count` requests one after the other, as a client does: on one kept-alive connection,
    or each on a new connection (`Connection: close` makes both ends close it after the
    response)."""
    headers = {"Connection": "close"} if fresh else {}
    times = []
    for _ in range(count):
        start = time.perf_counter()
        client.get(url, headers=headers).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per kind and server (in bursts of 50)"
    )
    parser.add_argument("--path", default="/v1/models")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ftui, ftui_url = start_ftui(Path(tmp) / "data")
        try:
            body = httpx.get(ftui_url + args.path).content
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(body)
            ref, ref_url = start_reference(args.path, body_file)
            try:
                servers = {"ftui serve": ftui_url + args.path, "reference": ref_url + args.path}
                results: dict[str, dict[str, list[float]]] = {
                    name: {"keep-alive": [], "fresh": []} for name in servers
                }
                # One long-lived connection per server for the keep-alive requests, another
                # client for fresh ones. Linux acknowledges at once the first ~16 segments of a
                # connection, and again after a pause longer than the retransmission timeout
                # (200 ms or more), so a missing TCP_NODELAY shows in bursts: a client that
                # sends requests one after the other, as when it lists many objects.
                kept = {name: httpx.Client() for name in servers}
                once = httpx.Client()
                for name, url in servers.items():
                    burst_ms(kept[name], url, BURST, fresh=False)  # warm up, past the 16
                # Rounds of bursts, alternating the servers, so that both share the load.
                for _ in range(max(1, args.requests // BURST)):
                    for name, url in servers.items():
                        results[name]["keep-alive"] += burst_ms(kept[name], url, BURST, False)
                        results[name]["fresh"] += burst_ms(once, url, BURST, True)
                for client in (*kept.values(), once):
                    client.close()
            finally:
                ref.terminate()
                ref.wait()
        finally:
            ftui.terminate()
            ftui.wait()

    count = len(results["ftui serve"]["fresh"])
    print(f"GET {args.path}, {count} requests each, {len(body)}-byte body; p50 (p90) ms")
    print(f"{'':12}{'keep-alive':>18}{'fresh connection':>20}{'keep-alive/fresh':>18}")
    medians = {}
    for name, kinds in results.items():
        cells = []
        for kind in ("keep-alive", "fresh"):
            values = sorted(kinds[kind])
            p50 = statistics.median(values)
            p90 = values[int(0.9 * (len(values) - 1))]
            medians[(name, kind)] = p50
            cells.append(f"{p50:8.2f} ({p90:6.2f})")
        ratio = medians[(name, "keep-alive")] / medians[(name, "fresh")]
        print(f"{name:12}{cells[0]:>18}{cells[1]:>20}{ratio:>18.2f}")
    vs = medians[("ftui serve", "keep-alive")] / medians[("reference", "keep-alive")]
    print(f"keep-alive p50, ftui serve / reference: {vs:.2f}")


if __name__ == "__main__":
    main()
