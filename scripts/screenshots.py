"""Regenerate the SVG screenshots of the terminal app in ``screenshots/`` (the README shows them).

    python scripts/screenshots.py                 # a fresh local server, the tiny test model
    python scripts/screenshots.py --size 100x30   # another terminal size
    python scripts/screenshots.py --base-url http://127.0.0.1:8321/v1 --model ada

By default it starts ``ftui serve`` in a temporary directory with the offline tiny model the
tests use (needs the ``local`` extra), trains real jobs on it, and drives the app through its
screens as a person would, saving one SVG per screen. Nothing is faked: every number on the
screenshots comes from those jobs. The last screenshot stops the server to show the offline view.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "screenshots"


async def wait(pilot, predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


async def shoot(pilot, name: str, out: Path) -> None:
    app = pilot.app
    app.clear_notifications()
    for box in app.screen.query("Input"):
        box.cursor_blink = False
    await pilot.pause(0.3)
    svg = app.export_screenshot(title=f"ftui — {name}")
    (out / f"{name}.svg").write_text(svg)
    print(f"screenshots/{name}.svg")


async def make_jobs(base_url: str, model: str, work: Path) -> dict[str, str]:
    """Two finished jobs (one with classification metrics) and one left running."""
    from ftui.client import Client
    from tests.tiny_model import make_sentiment_examples

    def write(name: str, n: int, seed: int) -> Path:
        path = work / name
        path.write_text("".join(json.dumps(e) + "\n" for e in make_sentiment_examples(n, seed)))
        return path

    async with Client(base_url) as client:
        train = await client.files.create(write("reviews_train.jsonl", 48, 0))
        valid = await client.files.create(write("reviews_valid.jsonl", 16, 1))
        first = await client.jobs.create(
            train.id,
            model,
            validation_file=valid.id,
            n_epochs=3,
            batch_size=4,
            learning_rate_multiplier=2.0,
            suffix="reviews",
            compute_classification_metrics=True,
            classification_positive_class=" positive",
        )
        await client.wait(first.id)
        second = await client.jobs.create(
            train.id,
            model,
            validation_file=valid.id,
            n_epochs=3,
            batch_size=4,
            learning_rate_multiplier=0.5,
            suffix="reviews-slow-lr",
        )
        await client.wait(second.id)
        running = await client.jobs.create(
            train.id,
            model,
            validation_file=valid.id,
            n_epochs=40,
            batch_size=1,
            suffix="long-run",
        )
    return {"classify": first.id, "slow": second.id, "running": running.id}


async def drive(
    base_url: str, model: str, size: tuple[int, int], out: Path, work: Path, stop_server
) -> None:
    from ftui.app import FtuiApp
    from ftui.client import BadRequestError
    from ftui.config import Config
    from ftui.screens.job_detail import JobDetailScreen
    from ftui.screens.new_job import NewJobScreen
    from ftui.screens.results import ResultsScreen

    jobs = await make_jobs(base_url, model, work)
    config = work / "config.toml"
    config.write_text(f'default_profile = "gpu-box"\n[profiles.gpu-box]\nbase_url = "{base_url}"\n')
    app = FtuiApp(config=Config.load(config), cache_path=work / "cache.sqlite3", environ={})
    async with app.run_test(size=size) as pilot:
        await wait(pilot, lambda: app.online is True and jobs["running"] in app.jobs, what="jobs")
        await wait(pilot, lambda: jobs["running"] in app.progress, what="progress")
        await shoot(pilot, "jobs", out)

        app.open_job(jobs["running"])
        await wait(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        detail = app.screen
        await wait(pilot, lambda: len(detail.metrics) > 40, what="live metrics")
        await pilot.pause(1.2)  # the chart redraws once a second
        await shoot(pilot, "job-detail", out)
        await app.pop_screen()

        app.open_results([jobs["classify"], jobs["slow"]])
        await wait(pilot, lambda: isinstance(app.screen, ResultsScreen))
        results = app.screen
        await wait(pilot, lambda: len(results.columns) == 2, what="results")
        await shoot(pilot, "results-loss", out)
        await pilot.press("c")
        await shoot(pilot, "results-accuracy", out)
        await app.pop_screen()
        app.open_results([jobs["classify"]])
        await wait(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.columns)
        await pilot.press("c", "c")
        await shoot(pilot, "results-classification", out)
        await app.pop_screen()

        from ftui.screens.jobs import sample_dataset_path

        app.open_new_job(training_file=sample_dataset_path())
        await wait(pilot, lambda: isinstance(app.screen, NewJobScreen))
        await wait(pilot, lambda: app.screen.models, what="models")
        await shoot(pilot, "new-job", out)
        await app.pop_screen()

        await pilot.press("question_mark")
        await shoot(pilot, "help", out)
        await pilot.press("escape")

        client = await app.api()
        if not (await client.jobs.retrieve(jobs["running"])).is_terminal:
            with contextlib.suppress(BadRequestError):  # it may have just finished
                await client.jobs.cancel(jobs["running"])
        stop_server()
        app.poke()
        await wait(pilot, lambda: app.online is False, what="offline")
        await shoot(pilot, "offline", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="use this server instead of starting one")
    parser.add_argument("--model", default="ada", help="base model to train (default: ada)")
    parser.add_argument("--size", default="120x40", help="terminal size, WxH (default 120x40)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ftui-shots-") as tmp:
        work = Path(tmp)
        server = None
        if args.base_url:
            base_url = args.base_url
        else:
            from tests.serverproc import ServerProcess, write_alias_table
            from tests.tiny_model import build_tiny_model

            model_dir = build_tiny_model(work / "tiny")
            data = work / "server"
            data.mkdir()
            write_alias_table(data, {args.model: model_dir})
            server = ServerProcess(data, extra_args=("--threads", "1")).start()
            base_url = server.base_url
        try:
            asyncio.run(
                drive(
                    base_url,
                    args.model,
                    (width, height),
                    args.out,
                    work,
                    server.stop if server else (lambda: None),
                )
            )
        finally:
            if server is not None:
                server.kill()


if __name__ == "__main__":
    main()
