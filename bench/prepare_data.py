#!/usr/bin/env python3
"""Benchmark `ftui prepare-data -q` against the legacy `openai tools fine_tunes.prepare_data -q`.

Makes the deterministic benchmark sets (classification `cls` and generation `gen`, 10k, 100k
and 1M rows, JSONL and CSV) with bench/gen_data.py, byte for byte the sets the legacy tool's
published timings were measured on, and runs both tools on each, back to back so they share the
machine's load. Each run happens in a fresh directory holding only a symlink to the input (as
the published figures were measured), so the `*_prepared*` outputs land there; they are compared
(sha256, then record by record) and deleted.

The legacy tool (openai==0.28.1 with the same pandas as ftui) is installed by this script into
its own virtual environment, outside the project (default ~/.cache/ftui-bench/); with
--no-legacy, or when it cannot be installed, only ftui is timed and the ratios use the legacy
tool's published figures (REFERENCE below).

Prints wall time, CPU time (user+sys) and peak RSS per run, and the ratios legacy/ftui. The goal:
at least 10x faster and at most a third of the memory on the 1M-row sets.

    .venv/bin/python bench/prepare_data.py                    # everything (about 10 minutes)
    .venv/bin/python bench/prepare_data.py --sizes 10000 --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import gen_data  # noqa: E402  (bench/ holds scripts, not a package)

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftui-bench"
LEGACY_PINS = ["openai==0.28.1", "openpyxl"]

# The legacy tool's published measurements on these sets, on a 2-core machine like the
# development one: wall median s, CPU median s, peak RSS median MB.
REFERENCE = {
    "cls_1000000.csv": (45.44, 42.42, 1664),
    "cls_1000000.jsonl": (64.79, 42.03, 1943),
    "gen_1000000.csv": (156.72, 107.90, 3825),
    "gen_1000000.jsonl": (128.84, 111.60, 4336),
    "cls_100000.csv": (4.41, 4.49, 263),
    "cls_100000.jsonl": (4.56, 4.61, 289),
    "gen_100000.csv": (14.43, 10.93, 504),
    "gen_100000.jsonl": (16.26, 12.11, 520),
    "cls_10000.csv": (1.07, 1.08, 107),
    "cls_10000.jsonl": (1.10, 1.09, 110),
    "gen_10000.csv": (1.58, 1.56, 134),
    "gen_10000.jsonl": (1.50, 1.59, 141),
}


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def make_data(data_dir: Path, kinds, sizes, formats) -> list[Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in kinds:
        for rows in sizes:
            for fmt in formats:
                path = data_dir / f"{kind}_{rows}.{fmt}"
                if not path.exists():
                    print(f"  making {path.name}", flush=True)
                    gen_data.write(path, kind, rows, fmt, seed=1)
                paths.append(path)
    return paths


def legacy_python(venv: Path, install: bool) -> Path | None:
    """The legacy tool's interpreter, installing it on first use; None if it cannot be had."""
    python = venv / "bin" / "python"
    marker = venv / ".ftui-bench-ok"
    if marker.exists():
        return python
    if not install:
        return None
    import pandas

    print(f"  installing openai==0.28.1 + pandas=={pandas.__version__} into {venv}", flush=True)
    try:
        if not python.exists():
            sh([sys.executable, "-m", "venv", str(venv)])
        sh(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                *LEGACY_PINS,
                f"pandas=={pandas.__version__}",
            ],
            timeout=900,
        )
        sh([str(python), "-c", "import openai.cli, pandas"])
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  the legacy tool could not be installed ({exc}); timing ftui only")
        return None
    marker.write_text("ok\n")
    return python


TIME = shutil.which("time", path="/usr/bin:/bin")


def measure(cmd: list[str], cwd: Path, env: dict, timeout: float) -> dict:
    """Run once: wall time, CPU time (user+sys) and peak RSS of the command alone.

    /usr/bin/time measures it when available (as for the published figures): a child forked from
    this process would otherwise report this process's own RSS as its peak when that is larger,
    because Linux carries the peak across exec.
    """
    stats = cwd / "time.txt"
    if TIME:
        cmd = [TIME, "-f", "%U %S %M", "-o", str(stats), *cmd]
    with open(cwd / "stdout.txt", "wb") as out, open(cwd / "stderr.txt", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0) if timeout <= 0 else _wait(proc, timeout)
        finally:
            wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu, rss_mb = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    if TIME and stats.exists():
        fields = stats.read_text().split()[-3:]
        with contextlib.suppress(ValueError, IndexError):
            cpu, rss_mb = float(fields[0]) + float(fields[1]), int(fields[2]) / 1024
    return {"rc": proc.returncode, "wall": wall, "cpu": cpu, "rss_mb": rss_mb}


def _wait(proc: subprocess.Popen, timeout: float) -> tuple:
    deadline = time.perf_counter() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.perf_counter() > deadline:
            proc.kill()
            return os.wait4(proc.pid, 0)
        time.sleep(0.02)


def outputs(run_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.glob("*_prepared*.jsonl"))
    }


def same_records(a: Path, b: Path) -> bool:
    with open(a, encoding="utf-8") as fa, open(b, encoding="utf-8") as fb:
        for la, lb in zip(fa, fb, strict=False):
            if la != lb and json.loads(la) != json.loads(lb):
                return False
        return fa.read(1) == "" and fb.read(1) == ""


def run_tool(name: str, cmd_for, data: Path, env: dict, timeout: float, keep: dict) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix=f"prep-{name}-"))
    try:
        (run_dir / data.name).symlink_to(data)
        result = measure(cmd_for(data.name), run_dir, env, timeout)
        result["outputs"] = outputs(run_dir)
        if name == "legacy" and result["rc"] == 0:
            keep.clear()
            keep_dir = Path(tempfile.mkdtemp(prefix="prep-legacy-out-"))
            for f in result["outputs"]:
                shutil.copy(run_dir / f, keep_dir / f)
            keep["dir"] = keep_dir
        elif name == "ftui" and keep.get("dir"):
            same = {}
            for f in result["outputs"]:
                theirs = keep["dir"] / f
                same[f] = theirs.exists() and same_records(run_dir / f, theirs)
            result["same_records_as_legacy"] = (
                bool(same)
                and all(same.values())
                and set(result["outputs"]) == {p.name for p in keep["dir"].iterdir()}
            )
        if result["rc"] != 0:
            result["stderr"] = (run_dir / "stderr.txt").read_text(errors="replace")[-2000:]
        return result
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="cls,gen")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--formats", default="jsonl,csv")
    ap.add_argument("--runs", type=int, default=1, help="runs per tool and dataset (median)")
    ap.add_argument("--data-dir", type=Path, default=CACHE / "prepare-data")
    ap.add_argument("--legacy-venv", type=Path, default=CACHE / "venv-openai-0.28.1")
    ap.add_argument("--no-legacy", action="store_true", help="time ftui only")
    ap.add_argument("--timeout", type=float, default=1500.0)
    ap.add_argument("--json-out", type=Path, help="also write all measurements here")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")

    print("bench: preparing datasets", flush=True)
    datasets = make_data(args.data_dir, kinds, sizes, formats)
    legacy = None if args.no_legacy else legacy_python(args.legacy_venv, install=True)

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)

    def ftui_cmd(name: str) -> list[str]:
        return [sys.executable, "-m", "ftui", "prepare-data", name, "-q"]

    def legacy_cmd(name: str) -> list[str]:
        assert legacy is not None  # the venv's `openai` console script
        return [str(legacy.parent / "openai"), "tools", "fine_tunes.prepare_data", "-f", name, "-q"]

    print(
        f"bench: {len(datasets)} datasets, {args.runs} run(s) each; legacy tool:"
        f" {'openai 0.28.1 in ' + str(args.legacy_venv) if legacy else 'not run'}",
        flush=True,
    )
    header = (
        f"{'dataset':<20}{'tool':<8}{'wall s':>9}{'cpu s':>9}{'rss MB':>9}"
        f"{'wall x':>9}{'cpu x':>8}{'rss /':>8}  notes"
    )
    print("\n" + header + "\n" + "-" * len(header), flush=True)
    results = []
    for data in datasets:
        keep: dict = {}
        legacy_runs, ftui_runs = [], []
        for _ in range(args.runs):
            if legacy:
                legacy_runs.append(run_tool("legacy", legacy_cmd, data, env, args.timeout, keep))
            ftui_runs.append(run_tool("ftui", ftui_cmd, data, env, args.timeout, keep))
        if keep.get("dir"):
            shutil.rmtree(keep["dir"], ignore_errors=True)
        row = {"dataset": data.name, "ftui": ftui_runs, "legacy": legacy_runs}
        ours = {k: median(ftui_runs, k) for k in ("wall", "cpu", "rss_mb")}
        if legacy_runs and all(r["rc"] == 0 for r in legacy_runs):
            base = {k: median(legacy_runs, k) for k in ("wall", "cpu", "rss_mb")}
            source = "side by side"
            print(
                f"{data.name:<20}{'legacy':<8}{base['wall']:>9.2f}{base['cpu']:>9.2f}"
                f"{base['rss_mb']:>9.0f}",
                flush=True,
            )
        elif data.name in REFERENCE:
            w, c, m = REFERENCE[data.name]
            base = {"wall": w, "cpu": c, "rss_mb": m}
            source = "published figures"
        else:
            base, source = None, ""
        notes = []
        if any(r["rc"] != 0 for r in ftui_runs):
            notes.append("FTUI FAILED: " + ftui_runs[0].get("stderr", "")[-300:])
        if ftui_runs and "same_records_as_legacy" in ftui_runs[0]:
            same = all(r.get("same_records_as_legacy") for r in ftui_runs)
            identical = all(
                ours_run["outputs"] == theirs["outputs"]
                for ours_run, theirs in zip(ftui_runs, legacy_runs, strict=True)
            )
            verdict = "same records" if same else "OUTPUT DIFFERS"
            notes.append("byte-identical output" if identical else verdict)
        if base:
            ratios = {
                "wall": base["wall"] / ours["wall"],
                "cpu": base["cpu"] / ours["cpu"],
                "rss": ours["rss_mb"] / base["rss_mb"],
            }
            row["ratios"] = ratios
            row["baseline"] = {"source": source, **base}
            if "1000000" in data.name:
                ok = ratios["wall"] >= 10 and ratios["rss"] <= 1 / 3
                notes.append(("goal met" if ok else "GOAL MISSED") + f" ({source})")
            print(
                f"{'' if source == 'side by side' else data.name:<20}{'ftui':<8}"
                f"{ours['wall']:>9.2f}{ours['cpu']:>9.2f}{ours['rss_mb']:>9.0f}"
                f"{ratios['wall']:>8.1f}x{ratios['cpu']:>7.1f}x{ratios['rss']:>8.2f}  "
                + "; ".join(notes),
                flush=True,
            )
        else:
            print(
                f"{data.name:<20}{'ftui':<8}{ours['wall']:>9.2f}{ours['cpu']:>9.2f}"
                f"{ours['rss_mb']:>9.0f}  " + "; ".join(notes),
                flush=True,
            )
        results.append(row)
    print(
        "\nwall x / cpu x: legacy time divided by ftui time (higher is better);"
        " rss /: ftui peak RSS as a fraction of the legacy tool's (lower is better)."
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    failed = any(r["rc"] != 0 for row in results for r in row["ftui"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
