"""One plan for creating a job: the request the new-job form previews is the request sent.

The form plans its preview with the client's ``plan_create``; ``jobs.create`` and the form's
own create both send a plan. These tests record what actually goes over the wire to the real
server (a transport that forwards every request and keeps the create requests) and compare it
with the preview, for every option the form offers, in both dialects.
"""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
from textual.widgets import Checkbox, Input

from ftui import dialects
from ftui.client import Client, UnsupportedError, plan_create
from ftui.screens.job_detail import JobDetailScreen
from ftui.screens.new_job import NewJobScreen, build_request, suffix_check
from tests.apihelpers import upload
from tests.tui_support import make_app, wait_for, wait_for_screen

CREATE_PATHS = ("/v1" + dialects.LEGACY_PATH, "/v1" + dialects.CURRENT_PATH)


class Recorder(httpx.AsyncBaseTransport):
    """Sends every request to the real server; keeps (path, JSON body) of each job create."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self.creates: list[tuple[str, dict]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path in CREATE_PATHS:
            self.creates.append((request.url.path, json.loads(request.content)))
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@pytest.fixture(scope="module")
def file_ids(server, tmp_path_factory) -> dict[str, str]:
    from tests.conftest import write_training_file

    directory = tmp_path_factory.mktemp("plan-files")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        return {
            "train": upload(http, write_training_file(directory / "t.jsonl", n=8))["id"],
            "valid": upload(http, write_training_file(directory / "v.jsonl", n=4, seed=1))["id"],
        }


def cancel(server, job_id: str) -> None:
    """Jobs made here only carry a request: stop them before they use the shared server."""
    base = dialects.LEGACY_PATH if job_id.startswith("ft-") else dialects.CURRENT_PATH
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post(f"{base}/{job_id}/cancel").status_code == 200


VALID = "<validation>"
# Every option of the form, one case each (and a few together), as typed into the form.
CASES: dict[str, tuple[dict, str, str]] = {  # name: (values, profile dialect, expected path)
    "defaults only": ({}, "auto", dialects.CURRENT_PATH),
    "validation file": ({"validation_file": VALID}, "auto", dialects.CURRENT_PATH),
    "suffix": ({"suffix": "My Model_v2!"}, "auto", dialects.CURRENT_PATH),
    "epochs": ({"n_epochs": "3"}, "auto", dialects.CURRENT_PATH),
    "batch size": ({"batch_size": "4"}, "auto", dialects.CURRENT_PATH),
    "lr multiplier": ({"learning_rate_multiplier": "0.5"}, "auto", dialects.CURRENT_PATH),
    "seed": ({"seed": "42"}, "auto", dialects.CURRENT_PATH),
    "prompt loss weight (legacy only)": (
        {"prompt_loss_weight": "0.1", "n_epochs": "2"},
        "auto",
        dialects.LEGACY_PATH,
    ),
    "binary classification (legacy only)": (
        {
            "validation_file": VALID,
            "compute_classification_metrics": True,
            "classification_positive_class": " positive",
            "classification_betas": "0.5, 2",
        },
        "auto",
        dialects.LEGACY_PATH,
    ),
    "multiclass classification (legacy only)": (
        {
            "validation_file": VALID,
            "compute_classification_metrics": True,
            "classification_n_classes": "3",
        },
        "auto",
        dialects.LEGACY_PATH,
    ),
    "everything on a legacy profile": (
        {
            "validation_file": VALID,
            "suffix": "Old Style",
            "n_epochs": "2",
            "batch_size": "2",
            "learning_rate_multiplier": "0.1",
            "seed": "7",
        },
        "legacy",
        dialects.LEGACY_PATH,
    ),
    "everything on a current profile": (
        {
            "validation_file": VALID,
            "suffix": "new_style-1",
            "n_epochs": "2",
            "batch_size": "2",
            "learning_rate_multiplier": "0.1",
            "seed": "7",
        },
        "current",
        dialects.CURRENT_PATH,
    ),
}


def form_values(file_ids: dict[str, str], values: dict) -> dict:
    out = {"training_file": file_ids["train"], "model": "ada", **values}
    if out.get("validation_file") == VALID:
        out["validation_file"] = file_ids["valid"]
    return out


@pytest.mark.parametrize("case", list(CASES))
async def test_jobs_create_sends_what_the_form_previews(server, file_ids, case):
    values, dialect, path = CASES[case]
    recorder = Recorder()
    async with Client(server.base_url, dialect=dialect, transport=recorder) as client:
        caps = await client.capabilities()
        req = build_request(form_values(file_ids, values), caps)
        assert req.ok, req.problems
        assert req.path == path
        job = await client.jobs.create(**dataclasses.asdict(req.choices))
    cancel(server, job.id)
    assert recorder.creates == [("/v1" + req.path, req.body)]
    assert job.id.startswith("ft-" if path == dialects.LEGACY_PATH else "ftjob-")
    assert job.training_file == file_ids["train"]


async def test_legacy_only_options_without_the_legacy_api_are_refused_by_both(server, file_ids):
    recorder = Recorder()
    async with Client(server.base_url, dialect="current", transport=recorder) as client:
        caps = await client.capabilities()  # as a server with only /v1/fine_tuning/jobs answers
        req = build_request(form_values(file_ids, {"prompt_loss_weight": "0.1"}), caps)
        assert req.problems == [
            ("nj-plw", "prompt_loss_weight: only the legacy API has these, and it is absent")
        ]
        assert "prompt_loss_weight" not in json.dumps(req.body)
        with pytest.raises(UnsupportedError, match="prompt_loss_weight: only the legacy"):
            await client.jobs.create(**dataclasses.asdict(req.choices))
    assert recorder.creates == []


@pytest.mark.parametrize(
    ("suffix", "dialect", "ok", "shown"),
    [
        ("My Model_v2!", "legacy", True, "my-model-v2"),
        ("My Model_v2!", "current", True, "My-Model_v2"),
        ("x" * 40, "legacy", True, None),
        ("x" * 41, "legacy", False, None),
        ("x" * 64, "current", True, None),
        ("x" * 65, "current", False, None),
        ("!!!", "current", False, None),
    ],
)
def test_suffix_rules_are_the_servers(suffix, dialect, ok, shown):
    good, message = suffix_check(suffix, dialect)
    assert good is ok, message
    if shown is not None:
        assert dialects.normalize_suffix(suffix, dialect) == shown
        assert f"appears as {shown!r}" in message


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("n_epochs", "51", "epochs must be at least 1 and at most 50"),
        ("batch_size", "0", "batch size must be at least 1 and at most 256"),
        ("learning_rate_multiplier", "0", "learning rate multiplier must be above 0 and at most"),
        ("prompt_loss_weight", "1.5", "prompt loss weight must be at least 0 and at most 1"),
        ("seed", "-1", "seed must be at least 0"),
        ("n_epochs", "two", "epochs must be a whole number, not 'two'"),
    ],
)
async def test_the_form_holds_the_servers_limits(server, file_ids, field, value, problem):
    """Each value the form refuses is one the server refuses too (400, naming the field)."""
    req = build_request(form_values(file_ids, {field: value}), None)
    assert [m for _f, m in req.problems if m.startswith(problem)], req.problems
    if value.lstrip("-").replace(".", "").isdigit():
        body = dict(req.body)
        if req.path == dialects.CURRENT_PATH and field in dialects.HYPERPARAMETERS:
            body["hyperparameters"] = {field: json.loads(value)}
        else:
            body[field] = json.loads(value)
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            answer = http.post(req.path, json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == field


async def test_the_forms_create_sends_its_preview_with_uploaded_ids(
    server, file_ids, tmp_path, make_training_file
):
    """The form itself: a local file is uploaded first and its id takes the placeholder's
    place; everything else is the previewed body, to the previewed endpoint."""
    recorder = Recorder()
    app = make_app(server, tmp_path)
    app.client_options["transport"] = recorder
    train = make_training_file(n=8)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = await wait_for_screen(pilot, NewJobScreen)
        await wait_for(pilot, lambda: "ada" in form.models, message="models from the server")
        for fid, value in {
            "#nj-training": str(train),
            "#nj-validation": file_ids["valid"],
            "#nj-suffix": "From The Form",
            "#nj-epochs": "2",
            "#nj-seed": "3",
            "#nj-positive": " positive",
        }.items():
            form.query_one(fid, Input).value = value
        form.query_one("#nj-classification", Checkbox).value = True
        await wait_for(pilot, lambda: form.request().ok, message="a complete form")
        req = form.request()
        assert req.path == dialects.LEGACY_PATH
        assert req.body["training_file"] == "<id of uploaded train.jsonl>"
        preview = form.query_one("#nj-preview")
        await wait_for(pilot, lambda: f"POST /v1{req.path}\n" in str(preview.render()))
        assert json.dumps(req.body, indent=2) in str(preview.render())
        await pilot.press("ctrl+r")
        detail = await wait_for_screen(pilot, JobDetailScreen, timeout=30)
        job = await wait_for(pilot, lambda: app.jobs.get(detail.job_id), message="the new job")
        cancel(server, job.id)
        assert job.training_file.startswith("file-")
        assert recorder.creates == [
            ("/v1" + req.path, {**req.body, "training_file": job.training_file})
        ]


async def test_a_preview_planned_for_another_server_is_shown_again_not_sent(
    server, file_ids, tmp_path
):
    """The form previews before it knows the server; if the server turns out to lack the
    endpoint the preview assumed, the real plan is shown and nothing is sent."""
    recorder = Recorder()
    app = make_app(server, tmp_path, dialect="current")  # as if /v1/fine-tunes were absent
    app.client_options["transport"] = recorder
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = await wait_for_screen(pilot, NewJobScreen)
        await wait_for(pilot, lambda: form.caps is not None and "ada" in form.models)
        form.caps = None  # the state before the server answered: both dialects assumed
        form.query_one("#nj-training", Input).value = file_ids["train"]
        form.query_one("#nj-plw", Input).value = "0.1"
        assert form.request().ok and form.request().path == dialects.LEGACY_PATH
        await pilot.press("ctrl+r")
        preview = form.query_one("#nj-preview")
        await wait_for(pilot, lambda: "only the legacy API" in str(preview.render()))
        assert isinstance(app.screen, NewJobScreen) and not form.request().ok
        assert plan_create(form.request().choices, form.caps) == form.request().plan
    assert recorder.creates == []
