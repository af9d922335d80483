"""The HTTP edge of the real `ftui serve`: browsers, sizes, slow clients, TCP_NODELAY.

Everything here is sent over real sockets to a real server process; raw sockets where an HTTP
client library would refuse to send the request (a 200 KB header, a body that never comes).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import os
import socket
import time

import httpx
import pytest

from ftui.commands.serve import listening_socket
from tests.apihelpers import error_of, upload

EVIL = "http://evil.example"
COMPLETION = {"model": "tiny", "prompt": "x", "max_tokens": 1}


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def _job_count(client: httpx.Client) -> int:
    return len(client.get("/fine_tuning/jobs", params={"limit": 10_000}).json()["data"])


# --- raw HTTP --------------------------------------------------------------------------------
def _connect(port: int, timeout: float = 15) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names) and the body by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed mid-body"
        body += chunk
    return status, headers, body


def _closes_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed the connection (EOF or reset); fails after `seconds`."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def _raw_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- Host, Origin, content type ----------------------------------------------------------------
def test_foreign_host_header_is_refused(client, server):
    before = _job_count(client)
    for method, path, body in [
        ("GET", "/models", None),
        ("POST", "/completions", COMPLETION),
        ("POST", "/fine-tunes", {"training_file": "file-x", "model": "tiny"}),
    ]:
        response = client.request(
            method, path, json=body, headers={"Host": f"evil.example:{server.port}"}
        )
        error = error_of(response, 400)
        assert error["code"] == "invalid_host"
        assert "evil.example" in error["message"] and "--allowed-host" in error["message"]
    assert _job_count(client) == before
    # Loopback names and addresses typed as addresses are fine (DNS rebinding needs a name).
    for host in ("localhost", f"localhost:{server.port}", f"[::1]:{server.port}", "127.0.0.2"):
        assert client.get("/models", headers={"Host": host}).status_code == 200, host


def test_cross_origin_browser_requests_are_refused(client, server, tmp_path):
    before_jobs = _job_count(client)
    before_files = len(client.get("/files").json()["data"])
    attacks = [
        client.post("/completions", json=COMPLETION, headers={"Origin": EVIL}),
        client.post("/fine-tunes", json={"training_file": "x"}, headers={"Origin": EVIL}),
        client.get("/models", headers={"Origin": EVIL}),
        client.post("/completions", json=COMPLETION, headers={"Origin": "null"}),
        client.post(
            "/files",
            data={"purpose": "fine-tune"},
            files={"file": ("x.jsonl", b'{"prompt": "a", "completion": "b"}\n')},
            headers={"Origin": EVIL},
        ),
    ]
    for response in attacks:
        error = error_of(response, 403)
        assert error["code"] == "origin_not_allowed"
        assert "--allowed-origin" in error["message"]
        assert "access-control-allow-origin" not in response.headers
    assert _job_count(client) == before_jobs
    assert len(client.get("/files").json()["data"]) == before_files
    # A page on a rebound name: foreign Host, foreign Origin and a "simple" text/plain body.
    response = client.post(
        "/completions",
        content=json.dumps(COMPLETION),
        headers={"Host": "evil.example:8321", "Origin": EVIL, "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    # A page of this very origin is no cross-origin caller.
    same = client.get("/models", headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert same.status_code == 200


def test_preflight_from_a_foreign_origin_gets_no_approval(client):
    response = client.options(
        "/completions",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert error_of(response, 403)["code"] == "origin_not_allowed"
    assert not any(k.startswith("access-control-") for k in response.headers)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "text/plain;charset=UTF-8", None],
)
def test_state_changing_bodies_must_be_json_or_multipart(client, content_type):
    before = _job_count(client)
    headers = {"Content-Type": content_type} if content_type else {}
    raw = json.dumps({"training_file": "file-x", "model": "tiny"}).encode()
    for path in ("/fine-tunes", "/fine_tuning/jobs", "/completions"):
        request = client.build_request("POST", path, content=raw, headers=headers)
        if content_type is None:
            request.headers.pop("content-type", None)
        error = error_of(client.send(request), 415)
        assert error["code"] == "unsupported_media_type"
        assert "application/json" in error["message"]
    assert _job_count(client) == before


def test_configured_origin_and_host_are_served_with_cors(server_factory):
    page = "http://localhost:3000"
    server = server_factory(extra_args=("--allowed-origin", page, "--allowed-host", "ftui.test"))
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        preflight = client.options(
            "/completions",
            headers={
                "Origin": page,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == page
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        response = client.get("/models", headers={"Origin": page})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == page
        assert "Origin" in response.headers["vary"]
        # Other origins still get nothing.
        assert client.get("/models", headers={"Origin": EVIL}).status_code == 403
        named = client.get("/models", headers={"Host": f"FTUI.test.:{server.port}"})
        assert named.status_code == 200
        assert client.get("/models", headers={"Host": "other.test"}).status_code == 400


def test_legacy_and_current_clients_still_work(client, server, tmp_path):
    """What openai 0.28 sends (JSON content type on every POST, even bodiless ones) and what
    the current SDK sends (its own headers, multipart uploads) pass the guard."""
    openai = pytest.importorskip("openai", reason="the openai package (dev extra) is missing")
    path = tmp_path / "train.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"n{i} ->", "completion": " ok"}) + "\n" for i in range(8))
    )
    sdk = openai.OpenAI(base_url=server.base_url, api_key="sk-local", max_retries=0)
    with open(path, "rb") as fh:
        file_id = sdk.files.create(file=fh, purpose="fine-tune").id
    job = sdk.fine_tuning.jobs.create(model="no-such-base-model", training_file=file_id)
    assert job.status in ("validating_files", "queued", "running", "failed")
    assert job.id in [j.id for j in sdk.fine_tuning.jobs.list(limit=100).data]
    assert [m.id for m in sdk.models.list().data]
    completion = sdk.completions.create(model="tiny", prompt="Hi", max_tokens=2)
    assert completion.choices[0].text is not None

    legacy_headers = {
        "Content-Type": "application/json",
        "User-Agent": "OpenAI/v1 PythonBindings/0.28.1",
        "X-OpenAI-Client-User-Agent": json.dumps({"bindings_version": "0.28.1"}),
    }
    created = client.post(
        "/fine-tunes",
        content=json.dumps({"training_file": file_id, "model": "no-such-base-model"}),
        headers=legacy_headers,
    )
    assert created.status_code == 200, created.text
    cancel = client.post(f"/fine-tunes/{created.json()['id']}/cancel", headers=legacy_headers)
    # 400 only when the job (its base model does not exist) has failed already.
    assert cancel.status_code == 200 or "already failed" in cancel.json()["error"]["message"]


# --- sizes -----------------------------------------------------------------------------------
def test_declared_oversize_body_is_refused_before_it_is_sent(server):
    with _connect(server.port) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
        error = _raw_error(*_read_response(sock), 413)
    assert error["code"] == "request_too_large"
    assert "100000000 bytes" in error["message"] and "--max-request-mb" in error["message"]


def test_streamed_oversize_body_is_cut_off_while_it_arrives(server):
    chunk = b"a" * (256 * 1024)
    with _connect(server.port) as sock:
        sock.sendall(
            b"POST /v1/fine-tunes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(6):  # 1.5 MiB in all; the limit is 1 MiB
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        error = _raw_error(*_read_response(sock), 413)
    assert "over 1048576 bytes" in error["message"]


def test_upload_limit_is_its_own_and_configurable(server_factory, tmp_path):
    server = server_factory(extra_args=("--max-upload-mb", "1"))
    line = json.dumps({"prompt": "p" * 90, "completion": " c"}) + "\n"
    small = tmp_path / "small.jsonl"
    small.write_text(line * 8000)  # 0.9 MB
    big = tmp_path / "big.jsonl"
    big.write_text(line * 16000)  # 1.8 MB
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        upload(client, small)
        with open(big, "rb") as fh:
            response = client.post("/files", data={"purpose": "fine-tune"}, files={"file": fh})
        error = error_of(response, 413)
        assert "Uploads are limited to 1 MiB" in error["message"]
        assert [f["filename"] for f in client.get("/files").json()["data"]] == ["small.jsonl"]
    assert not list((server.data_dir / "blobs" / "tmp").iterdir())


def test_huge_header_and_path_get_answers_and_the_server_stays_up(client, server):
    cases = [
        (b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000, 431),
        (b"GET /v1/files/" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: 127.0.0.1", 414),
    ]
    for request, status in cases:
        with _connect(server.port) as sock:
            sock.sendall(request + b"\r\n\r\n")
            error = _raw_error(*_read_response(sock), status)
            assert "16384 bytes" in error["message"]
    assert client.get("/models").status_code == 200


@pytest.mark.parametrize(
    "request_line, header, status",
    [
        (b"GET /v1/files/" + b"a" * 20_000 + b" HTTP/1.1", b"", 414),
        (b"GET /v1/models HTTP/1.1", b"X-Big: " + b"a" * 20_000 + b"\r\n", 431),
    ],
    ids=["url", "header"],
)
def test_head_limit_holds_when_the_head_arrives_in_one_piece(
    client, server, request_line, header, status
):
    # 20 KB is over the 16 KiB limit but small enough to arrive in a single read, where h11's
    # own bound (on incomplete heads only) would let it through.
    with _connect(server.port) as sock:
        sock.sendall(request_line + b"\r\nHost: 127.0.0.1\r\n" + header + b"\r\n")
        error = _raw_error(*_read_response(sock), status)
    assert "16384 bytes" in error["message"]
    assert client.get("/models").status_code == 200


def test_long_ids_are_not_echoed_whole(client):
    long_id = "x" * 100_000
    response = client.post("/fine-tunes", json={"training_file": long_id, "model": "tiny"})
    error = error_of(response, 400)
    assert "(100000 characters)" in error["message"]
    assert len(response.content) < 1000


# --- slow and idle clients -------------------------------------------------------------------
@pytest.fixture(scope="module")
def impatient(tmp_path_factory, tiny_model_dir):
    from tests.conftest import prepare_data_dir
    from tests.serverproc import ServerProcess

    data_dir = prepare_data_dir(tmp_path_factory.mktemp("impatient"), tiny_model_dir)
    proc = ServerProcess(data_dir, extra_args=("--threads", "1", "--request-timeout", "2")).start()
    yield proc
    proc.stop()


def test_a_body_that_never_comes_is_cut_off(impatient):
    with _connect(impatient.port) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n0123456789"
        )
        start = time.monotonic()
        error = _raw_error(*_read_response(sock), 408)
        waited = time.monotonic() - start
        assert "10 bytes of the body so far" in error["message"]
        assert 1.5 < waited < 12
        assert _closes_within(sock, 10) < 10


def test_silent_and_half_sent_connections_are_closed(impatient):
    with _connect(impatient.port) as idle, _connect(impatient.port) as partial:
        partial.sendall(b"GET /v1/mod")
        assert _closes_within(idle, 12) < 12
        error = _raw_error(*_read_response(partial), 408)
        assert "headers did not arrive" in error["message"]
    # Others are served meanwhile and after.
    with httpx.Client(base_url=impatient.base_url, timeout=10) as client:
        assert client.get("/models").status_code == 200


# --- TCP_NODELAY ---------------------------------------------------------------------------
async def _accepted_nodelay(sock: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            peer = transport.get_extra_info("socket")
            accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    host, port = sock.getsockname()[:2]
    _, writer = await asyncio.open_connection(host, port)
    try:
        return await asyncio.wait_for(accepted, 10)
    finally:
        writer.close()
        server.close()


def test_listening_socket_gives_accepted_connections_nodelay():
    """asyncio sets TCP_NODELAY on accepted sockets only when the listening socket was made with
    IPPROTO_TCP; a socket made with proto 0 (as `ftui serve` once did) leaves Nagle on."""
    assert asyncio.run(_accepted_nodelay(listening_socket("127.0.0.1", 0))) == 1
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert asyncio.run(_accepted_nodelay(plain)) == 0


def _server_side_nodelay(pid: int, client_sock: socket.socket) -> int:
    """TCP_NODELAY of the server's end of `client_sock`, read from a duplicate of the server's
    own descriptor (pidfd_getfd, Linux 5.6+): no debug hook in the server needed."""
    if not hasattr(os, "pidfd_open"):
        pytest.skip("os.pidfd_open is missing (Linux only)")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd_getfd = 438  # the same number on every Linux architecture
    want = client_sock.getsockname()
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(pidfd_getfd, pidfd, int(name), 0)
            if fd < 0:
                if ctypes.get_errno() in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                    pytest.skip("pidfd_getfd is not permitted here (needs ptrace rights)")
                continue
            with socket.socket(fileno=fd) as dup:
                try:
                    peer = dup.getpeername()
                except OSError:
                    continue
                if peer == want:
                    return dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        os.close(pidfd)
    raise AssertionError("the server holds no socket for this connection")


def test_real_server_connections_have_nodelay(server):
    with _connect(server.port) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock)[0] == 200
        assert _server_side_nodelay(server.process.pid, sock) == 1


# --- response headers ------------------------------------------------------------------------
def test_every_response_says_nosniff_and_downloads_are_attachments(client, tmp_path):
    path = tmp_path / "evil.html"
    path.write_bytes(b"<script>alert(1)</script>")
    created = upload(client, path, purpose="assistants", filename="x\\y;z é.html")
    download = client.get(f"/files/{created['id']}/content")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-type"] == "application/octet-stream"
    disposition = download.headers["content-disposition"]
    assert disposition == (
        "attachment; filename=\"x_y_z _.html\"; filename*=UTF-8''x%5Cy%3Bz%20%C3%A9.html"
    )
    for response in (
        client.get("/models"),
        client.get("/no-such-route"),
        client.get(f"/files/{created['id']}"),
        client.post("/completions", json={}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
