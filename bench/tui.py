"""Benchmark of the terminal app: first frame, event-log throughput, chart redraw.

    python bench/tui.py                 # all three, 7 start-up runs each
    python bench/tui.py --runs 11 --json out.json

1. **First frame.** Time from process start (the parent's clock just before it spawns the child)
   to the first frame written to the terminal (``App.on_ready``, posted right after the first
   compositor refresh), in a real pseudo-terminal of 120×40 with ``TERM=xterm-256color``:
   ftui on a cache of 10,000 jobs and 100,000 events (profile offline, so nothing but the cache
   can be shown) against a bare Textual app with a Header, an empty DataTable and a Footer. The
   two alternate, in the same run; the ratio of the medians is printed (issue 7 asks ≤ 1.5).
2. **Event log.** The job-detail screen receives 100,000 events in batches of 1,000 (as ``follow``
   delivers a backlog), one frame after each batch: median and p95 cost per batch (frame
   included), and the peak resident memory of the process.
3. **Chart.** The results screen with 100,000 steps (train and validation loss, EMA smoothing):
   milliseconds per full redraw at 120×40 (series, smoothing, downsampling, plotext build).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOBS = 10_000
EVENTS = 100_000
DEAD_URL = "http://127.0.0.1:9/v1"
PROFILE = "bench"
NAMESPACE = f"{PROFILE}@{DEAD_URL}"


# -- data ---------------------------------------------------------------------------------------
def job_json(i: int, t0: int = 1_700_000_000) -> dict:
    status = ("succeeded", "failed", "cancelled", "running")[i % 4] if i > 10 else "running"
    return {
        "id": f"ftjob-{i:024d}",
        "object": "fine_tuning.job",
        "created_at": t0 + i,
        "finished_at": t0 + i + 50 if status != "running" else None,
        "status": status,
        "model": ("ada", "babbage-002", "davinci-002")[i % 3],
        "fine_tuned_model": f"ft:ada:personal::{i:08d}" if status == "succeeded" else None,
        "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.1},
        "training_file": f"file-{i:024d}",
        "validation_file": None,
        "result_files": [],
        "trained_tokens": 1000 + i,
        "error": None,
        "seed": 42,
        "estimated_finish": None,
        "user_provided_suffix": None,
    }


def event_json(job: int, j: int, total: int) -> dict:
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{job:08d}-{j:08d}",
        "created_at": 1_700_000_000 + j,
        "level": "info",
        "message": f"Step {j}/{total}: training loss={2.0 * 0.9999**j:.4f}",
        "type": "metrics",
        "data": {"step": j, "train_loss": 2.0 * 0.9999**j, "total_steps": total},
    }


def build_cache(path: Path) -> None:
    """10,000 jobs; 100,000 events over 100 of them (1,000 each)."""
    from ftui.cache import Cache
    from ftui.types import Job, JobEvent

    with Cache(path) as cache:
        pc = cache.profile(NAMESPACE)
        pc.put_jobs([Job.from_api(job_json(i)) for i in range(JOBS)], complete=True)
        per_job = 1_000
        for k in range(EVENTS // per_job):
            events = [JobEvent.from_api(event_json(k, j, per_job)) for j in range(1, per_job + 1)]
            pc.record_events(f"ftjob-{k:024d}", 0, events, "poll")


def write_config(directory: Path) -> Path:
    path = directory / "config.toml"
    path.write_text(f'[profiles.{PROFILE}]\nbase_url = "{DEAD_URL}"\n')
    return path


# -- 1. first frame in a pty ----------------------------------------------------------------------
CHILD_BARE = """
import sys, time
from textual.app import App
from textual.widgets import DataTable, Footer, Header

class Bare(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()
    def on_ready(self):
        open(sys.argv[1], "w").write(repr(time.monotonic()))
        self.exit()

Bare().run()
"""

CHILD_FTUI = """
import sys, time
from pathlib import Path
from ftui.app import FtuiApp
from ftui.config import Config

class Probe(FtuiApp):
    CSS_PATH = str(Path(sys.modules["ftui.app"].__file__).with_name("app.tcss"))
    def on_ready(self):
        rows = self.screen.query_one("JobsTable").row_count
        open(sys.argv[1], "w").write(repr(time.monotonic()) + " " + str(rows))
        self.call_later(self.exit)

config = Config.load(sys.argv[2])
Probe("bench", config=config, cache_path=Path(sys.argv[3]), environ={}).run()
"""


def first_frame(code: str, args: list[str], out: Path) -> tuple[float, str]:
    """Seconds from just before spawning the child to its first frame, in a 120×40 pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor", PYTHONPATH=str(ROOT))
    done = threading.Event()
    tail = bytearray()

    def drain() -> None:
        while not done.is_set():
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            tail.extend(chunk)
            del tail[:-4000]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    proc.wait(timeout=120)
    done.set()
    os.close(slave)
    os.close(master)
    if not out.exists():
        raise RuntimeError(
            f"the child did not reach its first frame:\n{tail.decode(errors='replace')}"
        )
    text = out.read_text().split()
    return float(text[0]) - start, " ".join(text[1:])


def bench_first_frame(runs: int, work: Path) -> dict:
    cache = work / "cache.sqlite3"
    config = write_config(work)
    t = time.perf_counter()
    build_cache(cache)
    print(f"cache: {JOBS:,} jobs and {EVENTS:,} events built in {time.perf_counter() - t:.1f}s")
    out = work / "frame.txt"
    bare, ours, rows = [], [], ""
    first_frame(CHILD_BARE, [], out)  # warm the OS file cache for both
    first_frame(CHILD_FTUI, [str(config), str(cache)], out)
    for _ in range(runs):
        bare.append(first_frame(CHILD_BARE, [], out)[0])
        seconds, rows = first_frame(CHILD_FTUI, [str(config), str(cache)], out)
        ours.append(seconds)
    b, o = statistics.median(bare), statistics.median(ours)
    opens, lists = [], []
    from ftui.cache import Cache

    for _ in range(3):  # the cache's share of the start-up, measured here in the parent
        t = time.perf_counter()
        c = Cache(cache)
        opens.append(time.perf_counter() - t)
        t = time.perf_counter()
        c.profile(NAMESPACE).list_jobs()
        lists.append(time.perf_counter() - t)
        c.close()
    print(
        f"first frame (pty 120x40, {runs} runs each, median [min-max]):\n"
        f"  bare Textual app, empty DataTable: {b * 1000:7.0f} ms "
        f"[{min(bare) * 1000:.0f}-{max(bare) * 1000:.0f}]\n"
        f"  ftui, {JOBS:,} cached jobs ({rows} rows shown): {o * 1000:7.0f} ms "
        f"[{min(ours) * 1000:.0f}-{max(ours) * 1000:.0f}]\n"
        f"  ratio ftui/bare: {o / b:.2f} (target <= 1.5)\n"
        f"  of which the cache: opening it {statistics.median(opens) * 1000:.0f} ms (the integrity"
        f" scan is skipped after a clean close), listing all {JOBS:,} jobs"
        f" {statistics.median(lists) * 1000:.0f} ms"
    )
    return {
        "bare_ms": b * 1000,
        "ftui_ms": o * 1000,
        "ratio": o / b,
        "runs": runs,
        "cache_open_ms": statistics.median(opens) * 1000,
        "cache_list_jobs_ms": statistics.median(lists) * 1000,
    }


# -- 2. the event log -----------------------------------------------------------------------------
async def bench_event_log(work: Path) -> dict:
    from ftui.app import FtuiApp
    from ftui.cache import Cache
    from ftui.config import Config
    from ftui.screens.job_detail import JobDetailScreen
    from ftui.types import Job, JobEvent
    from ftui.widgets.event_log import EventLog

    cache_path = work / "log-cache.sqlite3"
    with Cache(cache_path) as cache:
        cache.profile(NAMESPACE).put_jobs([Job.from_api(job_json(1))])
    app = FtuiApp(
        PROFILE, config=Config.load(write_config(work)), cache_path=cache_path, environ={}
    )
    app.client_options = {"max_retries": 0}
    batch = 1_000
    events = [JobEvent.from_api(event_json(1, j, EVENTS)) for j in range(1, EVENTS + 1)]
    costs = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_job(f"ftjob-{1:024d}")
        while not isinstance(app.screen, JobDetailScreen) or not app.screen.query(EventLog):
            await pilot.pause(0.01)
        screen = app.screen
        log = screen.query_one(EventLog)
        await pilot.pause()
        baseline = []
        for _ in range(20):  # a frame with nothing new: what waiting for a frame costs
            t = time.perf_counter()
            await pilot.pause()
            baseline.append(time.perf_counter() - t)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu = []
        for start in range(0, EVENTS, batch):
            t, c = time.perf_counter(), time.process_time()
            screen._take_events(events[start : start + batch])
            log.flush()
            await pilot.pause()  # one frame
            costs.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        shown = log.line_count
        total = log.total
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    costs.sort()
    cpu.sort()
    med, p95 = statistics.median(costs), costs[int(len(costs) * 0.95)]
    cmed, cp95 = statistics.median(cpu), cpu[int(len(cpu) * 0.95)]
    base = statistics.median(baseline)
    print(
        f"event log: {EVENTS:,} events in {len(costs)} batches of {batch:,}, one frame each:\n"
        f"  per batch (wall, frame included) median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms;"
        f" an empty frame alone: {base * 1000:.1f} ms\n"
        f"  per batch (CPU of the process) median {cmed * 1000:.1f} ms, p95 {cp95 * 1000:.1f} ms"
        f" (the 1/s live chart redraw lands in the p95)\n"
        f"  total {sum(costs):.2f}s; {total:,} counted, {shown:,} lines kept (max_lines)\n"
        f"  peak RSS {peak / 1024:.0f} MB (before the events: {rss_before / 1024:.0f} MB)"
    )
    return {
        "batch_median_ms": med * 1000,
        "batch_p95_ms": p95 * 1000,
        "batch_cpu_median_ms": cmed * 1000,
        "batch_cpu_p95_ms": cp95 * 1000,
        "empty_frame_ms": base * 1000,
        "peak_rss_mb": peak / 1024,
    }


# -- 3. the chart ----------------------------------------------------------------------------------
async def bench_chart(work: Path, repeats: int = 10) -> dict:
    from ftui.app import FtuiApp
    from ftui.cache import Cache
    from ftui.config import Config
    from ftui.screens.results import ResultsScreen
    from ftui.types import Job, ResultRow
    from ftui.widgets.chart import MetricChart

    steps = 100_000
    rows = []
    for j in range(1, steps + 1):
        loss = 2.0 * 0.99995**j + 0.2 * ((j * 7919) % 101) / 101
        row = {"step": j, "train_loss": loss, "train_accuracy": 1 - loss / 3}
        if j % 100 == 0:
            row["valid_loss"] = loss * 1.1
        rows.append(ResultRow(row))
    cache_path = work / "chart-cache.sqlite3"
    with Cache(cache_path) as cache:
        pc = cache.profile(NAMESPACE)
        pc.put_jobs([Job.from_api(job_json(2))])
        pc.put_results(f"ftjob-{2:024d}", rows)
    app = FtuiApp(
        PROFILE, config=Config.load(write_config(work)), cache_path=cache_path, environ={}
    )
    app.client_options = {"max_retries": 0}
    times = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_results([f"ftjob-{2:024d}"])
        while not isinstance(app.screen, ResultsScreen) or not app.screen.rows:
            await pilot.pause(0.01)
        screen = app.screen
        chart = screen.query_one(MetricChart)
        chart.render()  # the first draw imports plotext: not counted
        for i in range(repeats):
            t = time.perf_counter()
            screen.action_smooth(1 if i % 2 == 0 else -1)  # recompute series + EMA, then draw
            chart.render()
            times.append(time.perf_counter() - t)
        size = chart.content_size
    med = statistics.median(times)
    print(
        f"chart: {steps:,} steps (train + valid loss, EMA), {size.width}x{size.height} cells: "
        f"{med * 1000:.0f} ms per redraw (median of {repeats}; min {min(times) * 1000:.0f})"
    )
    return {"redraw_ms": med * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="start-up runs of each app")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--only", choices=("frame", "log", "chart"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ftui-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "frame"):
            results["first_frame"] = bench_first_frame(args.runs, work)
        if args.only in (None, "log"):
            results["event_log"] = asyncio.run(bench_event_log(work))
        if args.only in (None, "chart"):
            results["chart"] = asyncio.run(bench_chart(work))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
