"""Pilot tests of the files screen against the real server: upload (checks, fixes, progress),
preview, delete, new job from a file, and path completion."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from textual.widgets import ProgressBar

from ftui.screens.file_preview import PreviewScreen, preview_lines
from ftui.screens.files import FilesScreen
from ftui.screens.new_job import NewJobScreen
from ftui.screens.upload import UploadScreen
from ftui.types import FileObject
from ftui.widgets.file_path_input import PathInput, list_matches
from ftui.widgets.prepare_report import PrepareReportView
from tests.apihelpers import upload
from tests.tui_support import (
    SIZES,
    T0,
    make_app,
    make_offline_app,
    no_workers,
    screen_text,
    settle_offline,
    wait_for,
    wait_for_screen,
)


async def open_files(pilot) -> FilesScreen:
    await pilot.press("2")
    screen = await wait_for_screen(pilot, FilesScreen)
    await wait_for(pilot, lambda: screen.loaded_from == "server", message="files from server")
    return screen


async def type_path(pilot, path: str) -> None:
    box = pilot.app.screen.query_one(PathInput)
    box.value = path
    box.cursor_position = len(path)
    await pilot.press("enter")


def server_files(server) -> dict[str, dict]:
    with httpx.Client(base_url=server.base_url) as c:
        return {f["id"]: f for f in c.get("/files").json()["data"]}


async def test_upload_runs_checks_then_fix_and_upload_with_progress(server, tmp_path):
    # A file with a necessary fix (a duplicated row is optional, missing completion lines
    # are dropped) so that the fixed upload differs from the original.
    rows = [{"prompt": f"Review {i} was fine ->", "completion": " positive"} for i in range(30)]
    rows.append({"prompt": "Review 0 was fine ->", "completion": " positive"})  # a duplicate
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_files(pilot)
        await pilot.press("u")
        dialog = await wait_for_screen(pilot, UploadScreen)
        await type_path(pilot, str(path))
        await wait_for(pilot, lambda: dialog.stage == "report", message="the prepare report")
        view = dialog.query_one(PrepareReportView)
        assert view.report is not None and view.report.n_records == 31
        dup = view.report.finding("duplicates")
        assert dup is not None and dup.kind == "optional" and dup.id in view.accepted
        # the highlighted finding's details (rows named) are one key away
        row = view.report.findings.index(dup)
        for _ in range(row):
            await pilot.press("down")
        text = screen_text(app)
        assert "[x] fix accepted" in text and "○ optional" in text and "lines: 31" in text

        progress: list[tuple[float, float | None]] = []
        bar = dialog.query_one("#upload-progress").query_one(ProgressBar)
        bar.watch(bar, "progress", lambda v: progress.append((v, bar.total)), init=False)
        await pilot.press("f")
        await wait_for_screen(pilot, FilesScreen)
        # the prepared files were uploaded (a classification set is split in train and
        # valid, the duplicate dropped), not the original; the training file is selected
        names = {"reviews_prepared_train.jsonl", "reviews_prepared_valid.jsonl"}
        new = await wait_for(
            pilot, lambda: {f.filename: f for f in screen.files if f.filename in names}
        )
        await wait_for(
            pilot, lambda: len(new) == 2 or len({f.filename for f in screen.files} & names) == 2
        )
        new = {f.filename: f for f in screen.files if f.filename in names}
        assert screen.selected_id() == new["reviews_prepared_train.jsonl"].id
        assert progress and progress[-1][0] == progress[-1][1]  # the bar reached its total
        on_server = server_files(server)
        lines = 0
        for name, f in new.items():
            local = tmp_path / name
            assert on_server[f.id]["bytes"] == local.stat().st_size
            lines += len(local.read_text().splitlines())
        assert lines == 30  # 31 rows less the duplicate
        assert not any(f.filename == "reviews.jsonl" for f in screen.files)


async def test_upload_as_is_skips_fixes_and_unreadable_file_reports(server, tmp_path):
    good = tmp_path / "plain.jsonl"
    good.write_text(
        "".join(json.dumps({"prompt": f"p{i} ->", "completion": " x\n"}) + "\n" for i in range(5))
    )
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{not json\n')

    app = make_app(server, tmp_path, keymap={"files.upload": "U"})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_files(pilot)
        await pilot.press("u")  # remapped away: nothing opens
        assert isinstance(app.screen, FilesScreen)
        await pilot.press("U")
        dialog = await wait_for_screen(pilot, UploadScreen)
        # a missing path: a message, the dialog stays on the path
        await type_path(pilot, str(tmp_path / "nope.jsonl"))
        await wait_for(pilot, lambda: "no such file" in screen_text(app))
        assert dialog.stage == "path"
        # an unreadable file: the checks say where, and u still offers the upload
        await type_path(pilot, str(bad))
        await wait_for(pilot, lambda: dialog.stage == "report")
        assert "line 2" in screen_text(app)
        assert dialog.report is None
        # change path (c), then the good file uploaded unchanged with u
        await pilot.press("c")
        await type_path(pilot, str(good))
        await wait_for(pilot, lambda: dialog.stage == "report" and dialog.report is not None)
        await pilot.press("u")
        await wait_for_screen(pilot, FilesScreen)
        uploaded = await wait_for(
            pilot, lambda: [f for f in screen.files if f.filename == good.name]
        )
        assert server_files(server)[uploaded[0].id]["bytes"] == good.stat().st_size
        assert not list(tmp_path.glob("plain_prepared*"))


async def test_preview_delete_and_new_job(server, tmp_path, make_training_file):
    path = make_training_file(n=12, name="preview.jsonl")
    with httpx.Client(base_url=server.base_url) as c:
        f = upload(c, path)
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_files(pilot)
        ids = [x.id for x in screen.files]
        screen.table.move_cursor(row=ids.index(f["id"]))
        await pilot.press("p")
        preview = await wait_for_screen(pilot, PreviewScreen)
        lines = await wait_for(pilot, lambda: preview.lines)
        assert lines == path.read_text().splitlines()
        await wait_for(pilot, lambda: lines[0][:40] in screen_text(app), message="first line")
        await pilot.press("escape")
        await wait_for_screen(pilot, FilesScreen)

        await pilot.press("n")  # the new-job form, with the file as its training file
        form = await wait_for_screen(pilot, NewJobScreen)
        assert form.query_one("#nj-training").value == f["id"]
        await pilot.press("escape")
        await wait_for_screen(pilot, FilesScreen)

        await pilot.press("d")
        from ftui.screens.confirm import ConfirmScreen

        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("n")  # no: nothing deleted
        await wait_for_screen(pilot, FilesScreen)
        assert f["id"] in server_files(server)
        await pilot.press("d")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: f["id"] not in [x.id for x in screen.files])
        assert f["id"] not in server_files(server)
        assert f["id"] not in [x.id for x in app.cache.list_files()]


async def test_path_completion(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train_a.jsonl").write_text("")
    (tmp_path / "data" / "train_b.jsonl").write_text("")
    (tmp_path / "data" / ".hidden").write_text("")
    base = str(tmp_path)
    assert list_matches(base + "/da") == [base + "/data/"]
    assert list_matches(base + "/data/tr") == [
        base + "/data/train_a.jsonl",
        base + "/data/train_b.jsonl",
    ]
    assert list_matches(base + "/data/") == [
        base + "/data/train_a.jsonl",
        base + "/data/train_b.jsonl",
    ]
    assert list_matches(base + "/data/.h") == [base + "/data/.hidden"]
    assert list_matches(base + "/missing/x") == []

    from textual.app import App

    class Harness(App):
        def compose(self):
            yield PathInput(id="p")

    app = Harness()
    async with app.run_test() as pilot:
        box = app.query_one(PathInput)
        box.focus()
        box.value = base + "/da"
        box.cursor_position = len(box.value)
        await pilot.press("tab")
        await wait_for(pilot, lambda: box.value == base + "/data/")
        await pilot.press("t", "tab")
        await wait_for(pilot, lambda: box.value == base + "/data/train_")
        assert box.matches == [base + "/data/train_a.jsonl", base + "/data/train_b.jsonl"]
        await pilot.press("b", "tab")
        await wait_for(pilot, lambda: box.value == base + "/data/train_b.jsonl")


def test_preview_lines_cut_long_and_partial_lines():
    data = b'{"a": 1}\n' + b"x" * 2000 + b"\nlast partial"
    lines = preview_lines(data, more=True)
    assert lines[0] == '{"a": 1}'
    assert len(lines[1]) == 1002 and lines[1].endswith(" …")
    assert lines[2] == "last partial …"


# ---------------------------------------------------------------- snapshots (offline, cache)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.usefixtures("utc")
def test_files_snapshot(snap_compare, tmp_path, size):
    app = make_offline_app(tmp_path)
    names = ["sentiment.jsonl", "sentiment_prepared_train.jsonl", "valid.jsonl", "notes.csv"]
    app.cache.put_files(
        [
            FileObject.from_api(
                {
                    "id": f"file-{i:024d}",
                    "filename": name,
                    "purpose": "fine-tune",
                    "bytes": 1000 * (i + 1) ** 3,
                    "created_at": T0 + 60 * i,
                    "status": "error" if name.endswith(".csv") else "processed",
                }
            )
            for i, name in enumerate(names)
        ]
    )

    async def run_before(pilot):
        await pilot.press("2")

        def ready(app):
            screen = app.screen
            return (
                isinstance(screen, FilesScreen)
                and screen.loaded_from == "cache"
                and no_workers(app, "files-load")
            )

        await settle_offline(pilot, ready)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def test_server_strings_never_reach_the_terminal_as_escapes(server, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "a ->", "completion": " b\\n"}\n')
    with httpx.Client(base_url=server.base_url) as c:
        f = upload(c, path)
    # The server refuses such names now; a file stored before it did (or another server) can
    # still have one, so the name goes straight into the server's database.
    with sqlite3.connect(server.data_dir / "ftui.db", timeout=30) as db:
        name = "evil\x1b[2J\x1b]52;c;aGk=\x07.jsonl"
        db.execute("UPDATE files SET filename=? WHERE id=?", (name, f["id"]))
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_files(pilot)
        assert any(x.id == f["id"] for x in screen.files)
        cell = screen.table.get_cell(f["id"], "filename")
        assert "\x1b" not in cell and "\x07" not in cell
        assert cell.startswith("evil␛[2J␛]52;c;aGk=")
