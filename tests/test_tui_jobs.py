"""The jobs screen: first frame from the cache, filter, sort, marks, hint; cancel and pause on
real jobs."""

from __future__ import annotations

import httpx

from ftui.screens.confirm import ConfirmScreen
from ftui.screens.jobs import JobsScreen
from ftui.screens.new_job import NewJobScreen
from ftui.screens.results import ResultsScreen
from ftui.widgets.base import StaleNotice
from tests.apihelpers import upload
from tests.tui_support import (
    job_json,
    make_app,
    make_offline_app,
    screen_text,
    wait_for,
    wait_for_screen,
    wait_for_text,
)

MIXED = [
    job_json(1, "succeeded", suffix="alpha"),
    job_json(2, "failed", error="Training file has 3 malformed lines"),
    job_json(3, "running", model="babbage"),
    job_json(4, "cancelled"),
    job_json(5, "succeeded", model="babbage", suffix="beta"),
]


def table_ids(screen: JobsScreen) -> list[str]:
    return screen.table.row_keys


async def test_first_frame_is_the_cache_and_offline_is_marked_stale(tmp_path):
    app = make_offline_app(tmp_path, jobs=MIXED)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        # Drawn from the cache before any request could have answered (none can: no server).
        assert table_ids(screen) == [f"ftjob-{i:06d}" for i in (5, 4, 3, 2, 1)]
        text = screen_text(app)
        for word in ("✔ succeeded", "✖ failed", "● running", "⊘ cancelled"):
            assert word in text  # a word and a glyph, never colour alone
        await wait_for(pilot, lambda: app.online is False)
        notice = screen.query_one(StaleNotice)
        await wait_for(pilot, lambda: notice.display)
        await wait_for_text(pilot, "STALE", "offline is offline; showing the cached job list")
        assert table_ids(screen)  # the cached rows stay


async def test_filter_sort_and_marks(tmp_path):
    app = make_offline_app(tmp_path, jobs=MIXED)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        await pilot.press("slash", *"babbage")
        assert table_ids(screen) == ["ftjob-000005", "ftjob-000003"]
        assert "2 of 5 jobs match 'babbage'" in screen_text(app)
        await pilot.press("space")  # words: AND
        await pilot.press(*"beta", "enter")
        assert table_ids(screen) == ["ftjob-000005"]
        await pilot.press("escape")
        assert len(table_ids(screen)) == 5
        await pilot.press("s")  # oldest first
        assert table_ids(screen)[0] == "ftjob-000001"
        await pilot.press("s")  # by status: running first, then failed…
        assert table_ids(screen)[:2] == ["ftjob-000003", "ftjob-000002"]
        await pilot.press("s", "s")  # back to newest first
        assert table_ids(screen)[0] == "ftjob-000005"
        await pilot.press("space", "j", "space")  # mark 5 and 4, then open both charts
        assert screen.marked == {"ftjob-000005", "ftjob-000004"}
        assert screen_text(app).count("★") == 2
        await pilot.press("o")
        results = await wait_for_screen(pilot, ResultsScreen)
        assert results.job_ids == ["ftjob-000005", "ftjob-000004"]


async def test_a_long_list_is_all_there_and_draws_only_what_shows(tmp_path):
    app = make_offline_app(tmp_path, jobs=[job_json(i) for i in range(3000)])
    async with app.run_test(size=(100, 24)) as pilot:
        table = app.screen.table
        # The first frame reads only the newest 500; the rest comes right after it.
        await wait_for(pilot, lambda: table.row_count == 3000)
        drawn_before = len(table._cells)
        assert drawn_before < 300  # cells made for the widths sample and the visible rows only
        await pilot.press("G")
        assert table.cursor_key == "ftjob-000000"
        await wait_for_text(pilot, "ftjob-000000", "3000/3000")
        await pilot.press("g", "pagedown")
        assert table.cursor_row > 5
        assert len(table._cells) < 400


async def test_cancel_needs_confirmation_and_only_for_active_jobs(tmp_path):
    app = make_offline_app(tmp_path, jobs=MIXED)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        assert screen.check_action("cancel_job", ()) is None  # newest is succeeded: greyed out
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("j", "j")  # the running job
        assert screen.selected_id() == "ftjob-000003"
        assert screen.check_action("cancel_job", ()) is True
        await pilot.press("c")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("n")  # no: nothing is sent, nothing changes
        await wait_for_screen(pilot, JobsScreen)
        assert app.jobs.get("ftjob-000003").status == "running"


async def test_first_run_hint_offers_the_bundled_sample(tmp_path):
    app = make_offline_app(tmp_path, jobs=[])
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for_text(pilot, "try the bundled sample")
        await pilot.press("t")
        form = await wait_for_screen(pilot, NewJobScreen)
        values = form.values()
        assert values["training_file"].endswith("sample_sentiment.jsonl")
        assert values["validation_file"].endswith("sample_sentiment_valid.jsonl")
        assert values["compute_classification_metrics"] is True
        req = form.request()
        assert req.path == "/fine-tunes"  # classification metrics: the legacy endpoint
        assert req.body["classification_positive_class"] == " positive"
        assert set(req.uploads) == {"training_file", "validation_file"}


async def test_cancel_pause_and_resume_a_real_job(server, tmp_path, make_training_file):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        file_id = upload(http, make_training_file(n=40))["id"]
        body = {
            "training_file": file_id,
            "model": "ada",
            "hyperparameters": {"n_epochs": 50, "batch_size": 1},
        }
        r = http.post("/fine_tuning/jobs", json=body)
        assert r.status_code == 200, r.text
        job_id = r.json()["id"]
    app = make_app(server, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: job_id in app.jobs)
        await wait_for(pilot, lambda: app.jobs.get(job_id).state == "running", timeout=60)
        screen.table.move_cursor(table_ids(screen).index(job_id))
        await pilot.press("p")
        await wait_for(pilot, lambda: app.jobs.get(job_id).state == "paused", timeout=60)
        await wait_for(pilot, lambda: "‖ paused" in screen_text(app))
        await pilot.press("p")
        await wait_for(pilot, lambda: app.jobs.get(job_id).state != "paused", timeout=60)
        await pilot.press("c")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.jobs.get(job_id).state == "cancelled", timeout=60)
        await wait_for(pilot, lambda: "⊘ cancelled" in screen_text(app))
