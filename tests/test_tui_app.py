"""The app shell: connecting, online state and recovery, header, sections, profiles, keymap,
palette, help, and job status notifications."""

from __future__ import annotations

import re

import httpx

from ftui.screens.files import FilesScreen
from ftui.screens.help import HelpScreen
from ftui.screens.job_detail import JobDetailScreen
from ftui.screens.jobs import JobsScreen
from ftui.screens.models import ModelsScreen
from ftui.screens.new_job import NewJobScreen
from ftui.types import FileObject, Job
from ftui.widgets.base import StaleNotice
from tests.apihelpers import upload
from tests.tui_support import (
    DEAD_URL,
    job_json,
    make_app,
    make_offline_app,
    screen_text,
    wait_for,
    wait_for_screen,
    wait_for_text,
)


def messages(app) -> list[str]:
    """The texts of the notifications the app has shown (and not yet dismissed)."""
    return [n.message for n in app._notifications]


async def test_starts_online_and_shows_profile_in_header(server, tmp_path):
    app = make_app(server, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, JobsScreen)
        assert "test · connecting…" in screen_text(app)
        await wait_for(pilot, lambda: app.online is True)
        assert app.profile.name == "test"
        client = await app.api()
        assert client is await app.api()  # one shared client
        assert client.cache is not None and client.cache.name == app.cache.name
        await wait_for(pilot, lambda: "test · ● online" in screen_text(app))


async def test_server_stops_while_open_then_recovers(server_factory, tmp_path, make_training_file):
    srv = server_factory()
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        file_id = upload(http, make_training_file(n=12))["id"]
        r = http.post(
            "/fine_tuning/jobs",
            json={"training_file": file_id, "model": "ada", "hyperparameters": {"n_epochs": 1}},
        )
        job_id = r.json()["id"]
    app = make_app(srv, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.online is True)
        app.open_job(job_id)
        detail = await wait_for_screen(pilot, JobDetailScreen)
        await wait_for(pilot, lambda: detail.events_seen > 0)
        srv.kill()
        await wait_for(pilot, lambda: app.online is False, timeout=30, message="offline")
        notice = detail.query_one(StaleNotice)
        await wait_for(pilot, lambda: notice.display)
        await wait_for_text(pilot, "STALE", "test is offline", "✖ offline · stale")
        assert app.is_running and app.return_code is None
        srv.start()  # same port, same data: the server resumes the job
        await wait_for(pilot, lambda: app.online is True, timeout=60, message="back online")
        await wait_for(pilot, lambda: not notice.display)
        await wait_for_text(pilot, "test · ● online")
        await wait_for(
            pilot,
            lambda: detail.follow_done and detail.job.is_terminal,
            timeout=120,
            message="the job to end, followed through the outage",
        )
        with httpx.Client(base_url=srv.base_url, timeout=30) as http:
            events = http.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()
        assert detail.events_seen == len(events["data"])  # every event once, none twice


async def test_unreachable_profile_goes_offline_without_crashing(tmp_path):
    app = make_offline_app(tmp_path, jobs=[job_json(1)])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.online is False)
        assert "offline · ✖ offline · stale" in screen_text(app)
        await pilot.press("r")  # refreshing while offline: asked, still no crash, still stale
        await wait_for(pilot, lambda: "Refreshing jobs…" in messages(app))
        await wait_for_text(pilot, "offline · ✖ offline · stale", "STALE")
        assert app.is_running and app.online is False


async def test_switch_profile_changes_client_cache_and_jobs(server, tmp_path):
    app = make_app(server, tmp_path, extra_profiles={"elsewhere": {"base_url": DEAD_URL}})
    app.client_options = {"max_retries": 0}
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.online is True)
        first = await app.api()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Switch profile: elsewhere" in titles
        app.switch_profile("elsewhere")
        await wait_for(pilot, lambda: app.profile.name == "elsewhere")
        assert app.cache.name == f"elsewhere@{DEAD_URL}"
        assert len(app.jobs) == 0
        await wait_for(pilot, lambda: app.online is False)
        assert "elsewhere · ✖ offline" in screen_text(app)
        assert await app.api() is not first
        app.switch_profile("test")
        await wait_for(pilot, lambda: app.online is True and app.profile.name == "test")
        app.switch_profile("nope")  # an unknown profile is refused with a message
        await wait_for(pilot, lambda: any("no profile named 'nope'" in n for n in messages(app)))
        assert app.profile.name == "test" and app.online is True


async def test_keymap_remaps_bindings_and_refuses_unreliable_keys(tmp_path):
    app = make_offline_app(
        tmp_path, keymap={"jobs.new": "m", "app.help": "h", "jobs.sort": "ctrl+enter"}
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: any("ctrl+enter" in n.message for n in app._notifications))
        await pilot.press("n")  # no longer bound
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("m")
        await wait_for_screen(pilot, NewJobScreen)
        await pilot.press("escape")
        await wait_for_screen(pilot, JobsScreen)
        await pilot.press("h")
        help_screen = await wait_for_screen(pilot, HelpScreen)
        await wait_for(pilot, lambda: "jobs.new" in screen_text(app))
        text = screen_text(app)
        assert "jobs.cancel" in text and "Cancel job" in text
        assert re.search(r"[ │█]m +New job +jobs\.new", text)
        assert help_screen.for_screen.__class__ is JobsScreen


async def test_theme_from_the_config(tmp_path):
    app = make_offline_app(tmp_path, tui={"theme": "ansi-dark"})
    assert app.theme == "ansi-dark"  # the terminal's own 16 colours
    (tmp_path / "second").mkdir()
    bad = make_offline_app(tmp_path / "second", tui={"theme": "no-such-theme"})
    async with bad.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any("no-such-theme" in n.message for n in bad._notifications))
        assert bad.theme != "no-such-theme"


async def test_command_palette_runs_screen_actions(tmp_path):
    app = make_offline_app(tmp_path, jobs=[job_json(1), job_json(2, "running")])
    async with app.run_test(size=(100, 30)) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in (
            "Go to Jobs",
            "Go to Files",
            "Go to Console",
            "New job",
            "Cancel job",
            "Sort",
            "Filter",
            "Open job ftjob-000001",
        ):
            assert title in titles, title
        await pilot.press("ctrl+p")
        await pilot.press(*"new job")
        await wait_for(pilot, lambda: "New job" in screen_text(app))
        await pilot.press("enter")
        await wait_for_screen(pilot, NewJobScreen)


async def test_sections_open_by_number_and_f_key(tmp_path):
    app = make_offline_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        for key, name, screen in (("2", "files", FilesScreen), ("f4", "models", ModelsScreen)):
            await pilot.press(key)
            await wait_for_screen(pilot, screen)
            assert app.current_mode == name
        await pilot.press("1")
        await wait_for(pilot, lambda: app.current_mode == "jobs")
        assert isinstance(app.screen, JobsScreen)


async def test_status_change_notifies_rings_and_sends_osc9(tmp_path):
    app = make_offline_app(tmp_path)
    app.environ["TMUX"] = "/tmp/tmux-1000/default,1,0"
    async with app.run_test(size=(100, 30)) as pilot:
        job = Job.from_api(job_json(7, "failed", error="out of memory"))
        app.notify_job_status(job, "running")
        assert "\a" in app.terminal_writes
        osc = [w for w in app.terminal_writes if "]9;" in w]
        assert len(osc) == 1
        # wrapped for tmux's passthrough, the inner ESCs doubled
        assert osc[0].startswith("\x1bPtmux;\x1b\x1b]9;ftui: ftjob-000007: running → failed")
        assert "out of memory" in osc[0] and osc[0].endswith("\x07\x1b\\")
        await wait_for(pilot, lambda: any("out of memory" in n.message for n in app._notifications))


def test_ftui_without_command_refuses_an_unknown_profile(tmp_path, monkeypatch, capsys):
    from ftui.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("FTUI_PROFILE", raising=False)
    assert main(["--profile", "nope"]) == 2
    assert "no profile named 'nope'" in capsys.readouterr().err


async def test_failed_workers_of_dialogs_are_reported_once(tmp_path):
    """A dialog's worker that fails (here: a preview while the server is down) is reported
    through the app like any screen's, and the dialog says so in its own words."""
    from ftui.screens.file_preview import PreviewScreen

    app = make_offline_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.online is False)
        file = FileObject.from_api({"id": "file-abc", "filename": "a.jsonl", "bytes": 10})
        app.push_screen(PreviewScreen(file))
        await wait_for_text(pilot, "✖ could not load the file")
        errors = [n.message for n in app._notifications if n.title == "Error"]
        assert len(errors) == 1 and errors[0].startswith("Previewing file-abc: ")
        assert app.is_running
