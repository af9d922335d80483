"""Fuzzing the real `ftui serve` from its own OpenAPI document (GET /openapi.json).

schemathesis generates requests for every operation, valid and invalid ones (wrong types,
missing fields, odd strings, out-of-range numbers), and sends them over HTTP. The server must
answer each in time, never with a 5xx, and every error in the OpenAI shape. The generation is
derandomized, so CI sees the same requests each run; FTUI_FUZZ_EXAMPLES=500 searches further.

The data dir has only the tiny model; no training file the fuzzer could guess exists, so no job
trains, and completions run on the tiny model.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (dev extra) is missing")
from hypothesis import HealthCheck, settings  # noqa: E402

from tests.conftest import prepare_data_dir  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

EXAMPLES = int(os.environ.get("FTUI_FUZZ_EXAMPLES", "60"))
REQUEST_TIMEOUT = 20  # seconds: an answer slower than this counts as a hang
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_model_dir):
    data_dir = prepare_data_dir(tmp_path_factory.mktemp("fuzz"), tiny_model_dir)
    proc = ServerProcess(data_dir, extra_args=("--threads", "1", "--request-timeout", "5"))
    proc.start()
    yield proc
    proc.stop()
    print(f"fuzz: {sum(STATUSES.values())} requests, statuses {dict(sorted(STATUSES.items()))}")
    log = "".join(proc.output)
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture
def served_schema(fuzz_server):
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{fuzz_server.port}/openapi.json")


schema = schemathesis.pytest.from_fixture("served_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_server_error_or_hangs(case, fuzz_server):
    response = case.call(timeout=REQUEST_TIMEOUT)
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (case.as_curl_command(), response.text[:2000])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, response.text[:500]
        assert len(response.content) < 4000  # no input echoed back whole
    headers = {k.lower(): v for k, v in response.headers.items()}  # values are lists here
    assert headers["x-content-type-options"] == ["nosniff"]
