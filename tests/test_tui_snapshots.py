"""Snapshots of the main screens at 80×24 and 120×40 (pytest-textual-snapshot; Textual pinned).

Every screen is drawn from a seeded cache with fixed ids and times, the profile offline (nothing
listens at its URL), times in UTC, cursor blink off and the toasts cleared, so a snapshot changes
only when what the screen shows changes. Update with ``pytest --snapshot-update`` and review the
SVGs (``snapshot_report.html``) before committing them.
"""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input

from ftui.widgets.base import StaleNotice
from tests.tui_support import SIZES, event_json, job_json, make_offline_app, result_rows

JOBS = [
    job_json(1, "succeeded", suffix="alpha"),
    job_json(2, "failed", error="Training file file-train000002 line 7: missing 'completion'"),
    job_json(3, "running", model="babbage"),
    job_json(4, "cancelled"),
    job_json(5, "succeeded", model="babbage", suffix="beta"),
]
EVENTS = {"ftjob-000003": [event_json(3, j, 120) for j in range(1, 81)]}
RESULTS = {"ftjob-000005": result_rows(120), "ftjob-000001": result_rows(120, validation=False)}


pytestmark = pytest.mark.usefixtures("utc")  # (tests/conftest.py)


def app(tmp_path):
    return make_offline_app(tmp_path, jobs=JOBS, events=EVENTS, results=RESULTS)


async def settle(pilot, ready=lambda app: True) -> None:
    """Wait until the app is offline and ``ready``; then freeze what changes with time."""
    app = pilot.app
    deadline = time.monotonic() + 20

    def one_shot_workers_done() -> bool:  # loads that end in a (toast) error when offline
        return not any(
            w.group in ("load", "checkpoints", "options") and not w.is_finished for w in app.workers
        )

    def offline_toast_posted() -> bool:  # notify() posts a message: wait for it, then clear
        return any(n.title == "Offline" for n in app._notifications)

    while not (
        app.online is False and offline_toast_posted() and ready(app) and one_shot_workers_done()
    ):
        assert time.monotonic() < deadline, "the screen did not settle"
        await pilot.pause(0.02)
    for notice in app.screen.query(StaleNotice):
        notice.set_since("12:00")
    for box in app.screen.query(Input):
        box.cursor_blink = False
    app.progress["ftjob-000003"] = (80, 120)
    app.jobs_changed.publish(None)
    app.clear_notifications()
    await pilot.pause()


async def stable_frames(pilot, needed: int = 3) -> None:
    deadline = time.monotonic() + 10
    last, same = None, 0
    while same < needed:
        assert time.monotonic() < deadline, "the screen kept changing"
        await pilot.pause(0.05)
        frame = pilot.app.export_screenshot()
        same = same + 1 if frame == last else 0
        last = frame


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_jobs(snap_compare, tmp_path, size):
    assert snap_compare(app(tmp_path), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_job_detail(snap_compare, tmp_path, size):
    async def run_before(pilot):
        pilot.app.open_job("ftjob-000003")

        def ready(app):
            screen = app.screen
            return (
                getattr(screen, "events_seen", 0) == 80
                and screen.checkpoint_note == "unknown (offline)"
                and screen.query_one("EventLog").pending == 0
                and not screen._chart_dirty
            )

        await settle(pilot, ready)
        # The log settles its scroll position and scrollbar over a few frames after its last
        # write: pin it to the end, then wait until consecutive frames are the same.
        pilot.app.screen.query_one("EventLog").scroll_end(animate=False)
        await stable_frames(pilot)

    assert snap_compare(app(tmp_path), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_failed_job_detail(snap_compare, tmp_path, size):
    async def run_before(pilot):
        pilot.app.open_job("ftjob-000002")
        await settle(pilot, lambda app: app.screen.checkpoint_note == "unknown (offline)")

    assert snap_compare(app(tmp_path), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_overlay(snap_compare, tmp_path, size):
    async def run_before(pilot):
        pilot.app.open_results(["ftjob-000005", "ftjob-000001"])
        await settle(pilot, lambda app: len(getattr(app.screen, "source", {})) == 2)

    assert snap_compare(app(tmp_path), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_new_job_form(snap_compare, tmp_path, size):
    async def run_before(pilot):
        pilot.app.open_new_job(training_file="file-train000001")
        await settle(pilot, lambda app: type(app.screen).__name__ == "NewJobScreen")
        pilot.app.screen.query_one("#nj-suffix").focus()
        await pilot.press(*"my model!")

    assert snap_compare(app(tmp_path), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare, tmp_path, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("question_mark")

    assert snap_compare(app(tmp_path), terminal_size=size, run_before=run_before)
