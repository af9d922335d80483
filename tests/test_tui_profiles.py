"""Pilot tests of the profiles screen: active and reachable markers, keys never shown, switch
with a key, add/edit/delete written to the config file (keymap and [tui] kept)."""

from __future__ import annotations

import tomllib

import pytest

from ftui.config import Config
from ftui.screens.confirm import ConfirmScreen
from ftui.screens.profiles import ProfileForm, ProfilesScreen
from tests.tui_support import make_app, screen_text, wait_for, wait_for_screen

SECRET = "sk-very-secret-key-1234"


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """The embedded server's state file is looked up under the user data dir: an empty one."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def reach(screen: ProfilesScreen, name: str) -> str:
    return screen.table.get_cell(name, "reach").plain


async def open_profiles(pilot) -> ProfilesScreen:
    await pilot.press("6")
    return await wait_for_screen(pilot, ProfilesScreen)


async def fill(pilot, form: ProfileForm, **values) -> None:
    for field, value in values.items():
        box = form.query_one(f"#pf-{field}")
        box.value = value
    await pilot.pause()


async def test_profiles_reachability_switch_add_edit_delete(server, tmp_path):
    app = make_app(
        server,
        tmp_path,
        extra_profiles={
            "keyed": {"base_url": server.base_url, "api_key_env": "KEYED_SECRET"},
            "broken": {"base_url": "http://127.0.0.1:9/v1"},
        },
        keymap={"files.upload": "U"},
        tui={"theme": "ansi-dark"},
        environ={"KEYED_SECRET": SECRET},
    )
    config_path = app.config.path
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_profiles(pilot)
        assert screen.names[0] == "test"  # the active profile first
        await wait_for(pilot, lambda: reach(screen, "keyed") == "✔ reachable")
        await wait_for(pilot, lambda: reach(screen, "broken") == "✖ unreachable")
        await wait_for(pilot, lambda: reach(screen, "test") == "✔ reachable")
        assert reach(screen, "local") == "○ not running (starts on use)"  # never started
        assert screen.table.get_cell("test", "active").plain == "● active"
        text = screen_text(app)
        assert SECRET not in text and SECRET[-4:] not in text
        assert screen.table.get_cell("keyed", "key") == "$KEYED_SECRET (set)"

        # switch with a key: the app reconnects to the chosen profile
        screen.table.move_cursor(row=screen.names.index("keyed"))
        await pilot.press("s")
        await wait_for(pilot, lambda: app.profile.name == "keyed" and app.online is True)
        assert "keyed" in app.sub_title
        screen = await open_profiles(pilot)
        await wait_for(pilot, lambda: screen.table.get_cell("keyed", "active").plain)
        assert screen.names[0] == "keyed"

        # add a profile: written to the config file without any key, keymap and theme kept
        await pilot.press("a")
        form = await wait_for_screen(pilot, ProfileForm)
        await fill(pilot, form, name="added", url="ftp://nowhere", env="ADDED_KEY")
        await pilot.press("ctrl+j")
        assert isinstance(app.screen, ProfileForm)  # refused, with the reason
        assert "base_url must start with http" in screen_text(app)
        await fill(pilot, form, url=server.base_url + "/")
        await pilot.press("ctrl+j")
        await wait_for_screen(pilot, ProfilesScreen)
        await wait_for(pilot, lambda: "added" in screen.names)
        data = tomllib.loads(config_path.read_text())
        assert data["profiles"]["added"] == {
            "base_url": server.base_url,
            "api_key_env": "ADDED_KEY",
        }
        assert data["keymap"] == {"files.upload": "U"}
        assert data["tui"] == {"theme": "ansi-dark"}
        assert SECRET not in config_path.read_text()
        assert screen.table.get_cell("added", "key") == "$ADDED_KEY (missing)"
        await wait_for(pilot, lambda: reach(screen, "added") == "✔ reachable")

        # edit it: the dialect changes, the name cannot
        screen.table.move_cursor(row=screen.names.index("added"))
        await pilot.press("e")
        form = await wait_for_screen(pilot, ProfileForm)
        assert form.query_one("#pf-name").disabled
        await fill(pilot, form, dialect="legacy", org="org-123")
        await pilot.press("ctrl+j")
        await wait_for_screen(pilot, ProfilesScreen)
        await wait_for(pilot, lambda: Config.load(config_path).get("added").dialect == "legacy")
        assert Config.load(config_path).get("added").organization == "org-123"

        # delete it after confirming; the active profile cannot be deleted
        screen.table.move_cursor(row=screen.names.index("added"))
        await pilot.press("d")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: "added" not in screen.names)
        assert "added" not in Config.load(config_path).profiles
        screen.table.move_cursor(row=screen.names.index("keyed"))
        await pilot.press("d")
        assert isinstance(app.screen, ProfilesScreen)
