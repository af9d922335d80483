"""Pilot tests of the models screen against the real server: fine-tuned and base models, the job
that produced each, delete after typing the name, open in the console.

The fine-tuned model comes from the ``trained_model`` fixture (tests/conftest.py), which trains
one tiny model per test server and shares it with the console tests.
"""

from __future__ import annotations

import httpx
import pytest

from ftui.screens.confirm import ConfirmScreen
from ftui.screens.console import ConsoleScreen
from ftui.screens.models import ModelsScreen
from ftui.types import Model
from tests.tui_support import (
    SIZES,
    T0,
    job_json,
    make_app,
    make_offline_app,
    no_workers,
    screen_text,
    settle_offline,
    wait_for,
    wait_for_screen,
)


def server_models(server) -> set[str]:
    with httpx.Client(base_url=server.base_url) as c:
        return {m["id"] for m in c.get("/models").json()["data"]}


async def open_models(pilot) -> ModelsScreen:
    await pilot.press("3")
    screen = await wait_for_screen(pilot, ModelsScreen)
    await wait_for(pilot, lambda: screen.loaded_from == "server", message="models from server")
    return screen


def cell(screen: ModelsScreen, model_id: str, column: str) -> str:
    value = screen.table.get_cell(model_id, column)
    return getattr(value, "plain", str(value))


async def test_models_list_job_console_and_delete_by_typing_the_name(
    server, tmp_path, trained_model
):
    model, job_id = trained_model
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        ids = [m.id for m in screen.models]
        assert model in ids and "tiny" in ids
        assert ids.index(model) < ids.index("tiny")  # fine-tuned models first
        assert cell(screen, model, "kind") == "★ fine-tuned"
        assert cell(screen, "tiny", "kind") == "base"
        # the job column links the model to the job that produced it (from the job list)
        await wait_for(pilot, lambda: cell(screen, model, "job") == job_id, message="job column")
        assert cell(screen, model, "base") == "tiny"
        assert cell(screen, "tiny", "job") == "—"

        # a base model cannot be deleted: the key is disabled
        screen.table.move_cursor(row=ids.index("tiny"))
        await pilot.press("d")
        assert not isinstance(app.screen, ConfirmScreen)

        # enter opens the console with the model; v opens it side by side with its base
        screen.table.move_cursor(row=ids.index(model))
        await pilot.press("v")
        console = await wait_for_screen(pilot, ConsoleScreen)
        assert console.model_of("a") == model and console.model_of("b") == "tiny"
        assert console.side_by_side
        await pilot.press("escape")
        await wait_for_screen(pilot, ModelsScreen)

        # delete: the confirm button stays disabled until the exact name is typed
        await pilot.press("d")
        confirm = await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press(*model[:-1])
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen)
        assert confirm.query_one("#confirm-yes").disabled
        await pilot.press(model[-1], "enter")
        await wait_for(pilot, lambda: model not in [m.id for m in screen.models])
        assert model not in server_models(server)
        assert model not in [m.id for m in app.cache.list_models()]
        assert model not in screen_text(app)


async def test_models_from_cache_when_offline(server_factory, tmp_path):
    srv = server_factory()
    app = make_app(srv, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_models(pilot)
    srv.kill()
    app = make_app(srv, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = await wait_for_screen(pilot, ModelsScreen)
        await wait_for(pilot, lambda: app.online is False, message="offline")
        await wait_for(pilot, lambda: "STALE" in screen_text(app))
        assert screen.loaded_from == "cache"
        assert "tiny" in [m.id for m in screen.models]
        assert "(cached)" in screen_text(app)


# ---------------------------------------------------------------- snapshots (offline, cache)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.usefixtures("utc")
def test_models_snapshot(snap_compare, tmp_path, size):
    jobs = [job_json(1, "succeeded", suffix="alpha"), job_json(2, "succeeded", model="babbage")]
    app = make_offline_app(tmp_path, jobs=jobs)
    base = [{"id": m, "created": T0 - 86400, "owned_by": "system"} for m in ("ada", "babbage")]
    tuned = [
        {"id": j["fine_tuned_model"], "created": j["finished_at"], "owned_by": "personal"}
        for j in jobs
    ]
    app.cache.put_models([Model.from_api(m) for m in base + tuned])

    async def run_before(pilot):
        await pilot.press("3")

        def ready(app):
            screen = app.screen
            return (
                isinstance(screen, ModelsScreen)
                and screen.loaded_from == "cache"
                and no_workers(app, "models-load")
            )

        await settle_offline(pilot, ready)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
