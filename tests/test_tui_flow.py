"""The whole loop in the app against the real server: form → job → live detail → results."""

from __future__ import annotations

import json

from textual.widgets import DataTable, Input

from ftui.screens.console import ConsoleScreen
from ftui.screens.job_detail import JobDetailScreen
from ftui.screens.new_job import NewJobScreen
from ftui.screens.results import ResultsScreen
from ftui.widgets.chart import MetricChart
from ftui.widgets.event_log import EventLog
from tests.tui_support import make_app, screen_text, wait_for, wait_for_screen


async def type_into(pilot, selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    await pilot.press(*list(text))


async def test_create_from_form_watch_it_finish_and_chart_it(
    server, tmp_path, make_training_file, monkeypatch
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the console's prompt history
    train = make_training_file(n=24)
    app = make_app(server, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.online is True)
        await pilot.press("n")
        form = await wait_for_screen(pilot, NewJobScreen)
        await wait_for(pilot, lambda: "ada" in form.models, message="models from the server")
        form.query_one("#nj-training", Input).value = str(train)
        await type_into(pilot, "#nj-suffix", "x" * 65)
        assert "too long" in str(form.query_one("#nj-suffix-check").render())
        await pilot.press("ctrl+r")  # refused: the suffix is too long
        assert isinstance(app.screen, NewJobScreen)
        form.query_one("#nj-suffix", Input).value = ""
        await type_into(pilot, "#nj-suffix", "tui flow")
        await type_into(pilot, "#nj-epochs", "2")
        await type_into(pilot, "#nj-batch", "8")
        await type_into(pilot, "#nj-lr", "3.3")
        req = form.request()
        assert req.ok, req.problems
        assert req.path == "/fine_tuning/jobs"
        assert req.body["hyperparameters"] == {
            "n_epochs": 2,
            "batch_size": 8,
            "learning_rate_multiplier": 3.3,
        }
        assert req.uploads == {"training_file": str(train)}
        preview = str(form.query_one("#nj-preview").render())
        assert "POST /v1/fine_tuning/jobs" in preview and '"suffix": "tui flow"' in preview
        await pilot.press("ctrl+r")
        detail = await wait_for_screen(pilot, JobDetailScreen, timeout=30)
        job_id = detail.job_id
        assert job_id in app.jobs
        await wait_for(
            pilot,
            lambda: detail.follow_done and detail.job.state == "succeeded",
            timeout=120,
            message="the job to succeed and its events to end",
        )
        log = detail.query_one(EventLog)
        await wait_for(pilot, lambda: log.pending == 0 and log.total == detail.events_seen)
        assert any("successfully completed" in line for line in log.lines)
        assert detail.job.fine_tuned_model and ":tui-flow:" in detail.job.fine_tuned_model
        await wait_for(pilot, lambda: detail.query_one(MetricChart).lines, message="loss chart")
        assert detail.metrics and detail.total_steps == max(detail.metrics)
        text = screen_text(app)
        assert "✔ succeeded" in text and detail.job.fine_tuned_model in text

        await pilot.press("y")
        assert app.clipboard == detail.job.fine_tuned_model
        # the status change was announced: a notice, the bell, and OSC 9 for the desktop
        await wait_for(
            pilot,
            lambda: any(
                w.startswith("\x1b]9;") and job_id in w and "→ succeeded" in w
                for w in app.terminal_writes
            ),
            message="the OSC 9 notification of the job's success",
        )
        assert "\a" in app.terminal_writes

        await pilot.press("t")  # try the model: the console, side by side with its base
        console = await wait_for_screen(pilot, ConsoleScreen)
        assert console.initial_model == detail.job.fine_tuned_model
        assert console.initial_compare == "ada"
        await app.pop_screen()
        await wait_for_screen(pilot, JobDetailScreen)

        await pilot.press("o")
        results = await wait_for_screen(pilot, ResultsScreen)
        await wait_for(pilot, lambda: results.source.get(job_id) == "results file")
        rows = results.rows[job_id]
        assert len(rows) == detail.total_steps
        chart = results.query_one(MetricChart)
        names = [ln.name for ln in chart.lines if ln.legend]
        assert names == ["train loss"]  # no validation file: no validation line
        raw = [ln for ln in chart.lines if ln.weight == "raw"]
        assert raw and [ln.y for ln in raw][0] == [r["train_loss"] for r in rows]
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert results.smoothing == 0 and all(ln.weight == "normal" for ln in chart.lines)
        await pilot.press("x")
        assert results.by == "epoch"
        assert max(chart.lines[0].x) == 2.0  # two epochs
        await pilot.press("l")
        assert results.log_y
        await pilot.press("v")
        table = results.query_one("#results-table", DataTable)
        assert table.display and table.row_count == len(rows)
        export = tmp_path / "out.csv"
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        app.screen.query_one("#prompt-input", Input).value = str(export)
        await pilot.press("enter")
        await wait_for(pilot, lambda: export.exists(), message="the export")
        assert export.read_text().splitlines()[0].startswith("step,")
        assert len(export.read_text().splitlines()) == len(rows) + 1

        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobsScreen")
        await wait_for(pilot, lambda: job_id in screen_text(app))
        assert "✔ succeeded" in screen_text(app)
        assert json.loads(json.dumps(app.jobs.get(job_id).to_dict()))["status"] == "succeeded"
