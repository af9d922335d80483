"""Pilot tests of the prepare screen: checks on a CSV in a worker, toggling optional fixes,
writing, uploading and opening a new job; an unreadable file."""

from __future__ import annotations

import json

import httpx

from ftui.screens.new_job import NewJobScreen
from ftui.screens.prepare import PrepareScreen
from tests.tui_support import make_app, screen_text, wait_for, wait_for_screen


def write_items_csv(path):
    rows = [("prompt", "completion")]
    colours = ("red", "blue", "green")
    for i in range(20):
        rows.append((f"Describe item {i} in one line", f"Item {i} is {colours[i % 3]}, {i} parts"))
    rows.append(("Describe item 3 in one line", "Item 3 is red, 3 parts"))  # line 22: duplicate
    rows.append(("Describe item 99 in one line", ""))  # line 23: empty completion
    path.write_text("".join(",".join(f'"{c}"' for c in r) + "\n" for r in rows))
    return path


async def test_prepare_csv_toggle_fixes_apply_upload_new_job(server, tmp_path):
    source = write_items_csv(tmp_path / "items.csv")
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        screen = await wait_for_screen(pilot, PrepareScreen)
        # the screen is active as soon as it is pushed; its input is focused once it is mounted
        box = screen.path_input
        await wait_for(pilot, lambda: box.has_focus, message="the path input focused")
        box.value = str(source)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.stage == "report", message="report")
        report = screen.report
        assert report is not None and report.format == "csv" and report.n_records == 22
        assert report.finding("empty_completion").kind == "necessary"
        assert report.finding("empty_completion").rows == (23,)
        assert report.finding("duplicates").rows == (22,)
        optional = {f.id for f in report.optional}
        assert {"duplicates", "leading_space"} <= optional
        assert screen.view.accepted == optional  # every optional fix starts accepted

        # decline the leading-space fix: move to its row and press space
        row = report.findings.index(report.finding("leading_space"))
        for _ in range(row):
            await pilot.press("down")
        await pilot.press("space")
        assert "leading_space" not in screen.view.accepted
        await wait_for(
            pilot, lambda: "[ ] skip" in (t := screen_text(app)) and "[ ] fix skipped" in t
        )

        # u is not offered before the necessary fixes are written
        await pilot.press("u")
        assert screen.stage == "report" and not screen.uploaded

        await pilot.press("f")
        await wait_for(pilot, lambda: screen.stage == "written", message="written")
        out = tmp_path / "items_prepared.jsonl"
        assert list(screen.written) == [out]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 20  # the empty completion and the duplicate dropped
        assert not any(r["completion"].startswith(" ") for r in rows)  # declined
        assert not any(r["prompt"].startswith("Describe item") for r in rows)  # accepted
        await wait_for(pilot, lambda: "Wrote items_prepared.jsonl" in screen_text(app))

        await pilot.press("n")  # uploads the written file, then opens the new-job form
        form = await wait_for_screen(pilot, NewJobScreen)
        (uploaded,) = screen.uploaded
        assert uploaded.filename == "items_prepared.jsonl"
        assert form.query_one("#nj-training").value == uploaded.id
        with httpx.Client(base_url=server.base_url) as c:
            content = c.get(f"/files/{uploaded.id}/content").content
        assert content == out.read_bytes()
        assert source.read_text().count("\n") == 23  # the source is never modified

        # changing a choice after writing asks for a new write
        await pilot.press("escape")
        await wait_for_screen(pilot, PrepareScreen)
        await pilot.press("space")
        assert screen.stage == "report" and screen.written is None


async def test_prepare_path_argument_and_unreadable_file(server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": " b"}\n{"prompt": "c", \n')
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(PrepareScreen(str(bad)))
        screen = await wait_for_screen(pilot, PrepareScreen)
        await wait_for(pilot, lambda: "could not read" in (t := screen_text(app)) and "line 2" in t)
        assert screen.report is None and screen.stage == "path"
        await pilot.press("f")  # nothing to apply: nothing happens, nothing crashes
        assert screen.stage == "path" and screen.written is None
        assert screen.path_input.has_focus
