"""The app shell: connecting, online state, header, sections, keymap, notifications."""

from __future__ import annotations

from ftui.screens.jobs import JobsScreen
from tests.tui_support import make_app, screen_text, wait_for


async def test_starts_online_and_shows_profile_in_header(server, tmp_path):
    app = make_app(server, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, JobsScreen)
        await wait_for(pilot, lambda: app.online is True)
        assert app.profile.name == "test"
        await wait_for(pilot, lambda: "test · ● online" in screen_text(app))
