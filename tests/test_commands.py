"""The scripting commands (ftui jobs, follow, wait, results, create, …) against the real server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ftui.cli import main
from ftui.client import Client
from ftui.config import Config, Profile

KEY = "sk-cmd-SECRET-KEY-do-not-print-424242"
FAST = ["--n-epochs", "1", "--batch-size", "8", "--learning-rate-multiplier", "3.3"]
EVENT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \S")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """Config, cache and data dirs of ftui under tmp_path; no OpenAI env vars."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORGANIZATION", "FTUI_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


def ftui(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_loop_from_the_command_line(server, home, make_training_file, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    train = make_training_file(n=40)

    code, out, _ = ftui(capsys, "upload", train)
    assert code == 0 and re.fullmatch(rf"Uploaded file from {train}: (file-\S+)\n", out)
    file_id = out.split()[-1]
    code, out, _ = ftui(capsys, "files", "--json")
    assert file_id in [f["id"] for f in json.loads(out)]

    code, out, _ = ftui(capsys, "create", "-t", file_id, "-m", "ada", "--suffix", "cli", *FAST)
    assert code == 0, out
    job_id = re.search(r"^Created fine-tune: (\S+)$", out, re.M).group(1)
    events = [line for line in out.splitlines() if EVENT_LINE.match(line)]
    assert len(events) >= 5
    assert "Job complete! Status: succeeded 🎉" in out
    model = re.search(r"ftui complete -m (\S+) -p <YOUR_PROMPT>", out).group(1)
    assert ":cli:" in model

    code, out, _ = ftui(capsys, "jobs", "--json")
    listed = {j["id"]: j for j in json.loads(out)}
    assert listed[job_id]["status"] == "succeeded" and listed[job_id]["fine_tuned_model"] == model
    code, out, _ = ftui(capsys, "jobs")
    assert out.splitlines()[0].split()[:2] == ["ID", "STATUS"] and job_id in out

    # follow of a finished job replays every event (from the cache) and the final words.
    code, out, _ = ftui(capsys, "follow", job_id)
    assert code == 0 and [ln for ln in out.splitlines() if EVENT_LINE.match(ln)] == events
    code, out, _ = ftui(capsys, "wait", job_id)
    assert (code, out) == (0, f"{job_id}: succeeded ({model})\n")

    code, _, err = ftui(capsys, "results", job_id, "-o", home / "r.csv")
    assert code == 0 and (home / "r.csv").read_text().startswith("step,")
    code, out, _ = ftui(capsys, "results", job_id)
    assert out == (home / "r.csv").read_text()
    code, out, _ = ftui(capsys, "results", job_id, "--json")
    assert [r["step"] for r in json.loads(out)] == [1, 2, 3, 4, 5]

    code, out, _ = ftui(capsys, "models")
    assert model in out
    code, out, _ = ftui(capsys, "delete-model", model)
    assert (code, out) == (0, f"Deleted {model}\n")
    code, out, _ = ftui(capsys, "models", "--json")
    assert model not in [m["id"] for m in json.loads(out)]

    code, out, err = ftui(capsys, "cancel", job_id)
    assert code == 1 and err.startswith("Error: ") and "(HTTP status code: 400)" in err

    # A named profile in the config file, legacy dialect; upload by path inside create.
    config = Config.load()
    config.set_profile(Profile(name="srv", base_url=server.base_url, dialect="legacy"))
    config.save()
    monkeypatch.delenv("OPENAI_BASE_URL")
    code, out, _ = ftui(
        capsys, "create", "--profile", "srv", "-t", train, "-m", "ada", "--no-follow", *FAST
    )
    assert code == 0 and f"Uploaded file from {train}: file-" in out
    legacy_id = re.search(r"^Created fine-tune: (ft-\S+)$", out, re.M).group(1)
    code, out, _ = ftui(capsys, "cancel", "--profile", "srv", legacy_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, out, _ = ftui(capsys, "wait", "--profile", "srv", legacy_id)
    assert (code, out) == (1, f"{legacy_id}: cancelled\n")


def test_jobs_offline_shows_the_cached_list(
    server_factory, home, capsys, monkeypatch, make_training_file
):
    proc = server_factory()
    monkeypatch.setenv("OPENAI_BASE_URL", proc.base_url)
    code, out, _ = ftui(capsys, "create", "-t", "file-nope", "-m", "ada", "--no-follow")
    assert code == 1  # no such file: nothing was created
    code, online, _ = ftui(capsys, "jobs", "--json")
    assert code == 0 and json.loads(online) == []
    asyncio.run(_create_job(proc.base_url, make_training_file(n=8)))
    code, online, _ = ftui(capsys, "jobs")
    assert code == 0 and len(online.splitlines()) == 2
    proc.kill()
    code, out, err = ftui(capsys, "jobs")
    assert code == 1 and out == online
    assert f"cannot reach {proc.base_url}" in err and "showing the jobs cached at" in err


async def _create_job(base_url: str, path: Path) -> None:
    async with Client(base_url, dialect="current") as c:
        f = await c.files.create(path)
        await c.jobs.create(f.id, "ada", n_epochs=1)


def test_ctrl_c_in_follow_says_how_to_resume_and_cancel(server, home, make_training_file):
    config = Config.load()
    config.set_profile(Profile(name="srv", base_url=server.base_url, dialect="current"))
    config.save()

    async def start_long_job() -> str:
        async with Client(server.base_url, dialect="current") as c:
            f = await c.files.create(make_training_file(n=200, name="long.jsonl"))
            return (await c.jobs.create(f.id, "tiny", n_epochs=50, batch_size=1)).id

    job_id = asyncio.run(start_long_job())
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftui", "follow", "--profile", "srv", job_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        first = proc.stdout.readline()  # the first event: the command is following
        assert EVENT_LINE.match(first), first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:

        async def cancel() -> None:
            async with Client(server.base_url, dialect="current") as c:
                await c.jobs.cancel(job_id)

        asyncio.run(cancel())
    assert proc.returncode == 130, err
    assert re.search(r"Stream interrupted\. Job is still (running|validating_files|queued)\.", out)
    assert f"  ftui follow --profile srv {job_id}\n" in out
    assert f"  ftui cancel --profile srv {job_id}\n" in out
    assert "Traceback" not in err


def test_the_key_shows_up_nowhere_but_its_own_file(
    server_factory, home, capsys, monkeypatch, make_training_file
):
    proc = server_factory(api_key=KEY)
    config = Config.load()
    config.set_profile(Profile(name="guarded", base_url=proc.base_url))
    config.store_api_key("guarded", KEY)
    config.save()
    outputs = []
    for argv in (
        ["upload", make_training_file(n=8)],
        ["files"],
        ["jobs", "--json"],
        ["models"],
        ["follow", "ftjob-nope"],
    ):
        outputs.append(ftui(capsys, *argv, "--profile", "guarded"))
    assert [o[0] for o in outputs] == [0, 0, 0, 0, 1]
    # The same key through the environment, and a wrong key: still never printed.
    monkeypatch.setenv("OPENAI_BASE_URL", proc.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    outputs.append(ftui(capsys, "jobs"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY + "x")
    outputs.append(ftui(capsys, "jobs"))
    assert outputs[-1][0] == 1 and "(HTTP status code: 401)" in outputs[-1][2]
    for _, out, err in outputs:
        assert KEY not in out and KEY not in err
    ours = [p for d in home.glob("xdg_*") for p in d.rglob("*") if p.is_file()]
    assert any(p.name == "cache.sqlite3" for p in ours)
    holders = [p for p in ours if KEY.encode() in p.read_bytes()]
    assert holders == [home / "xdg_config_home" / "ftui" / "keys" / "guarded.key"]


def test_complete(server, home, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    base = ["complete", "-m", "tiny", "-M", "6", "-t", "0"]
    code, plain, _ = ftui(capsys, *base, "-p", "Great film ->")
    assert code == 0 and plain.endswith("\n") and len(plain) > 1
    code, streamed, _ = ftui(capsys, *base, "-p", "Great film ->", "--stream")
    assert (code, streamed) == (0, plain)
    monkeypatch.setattr("sys.stdin", io.StringIO("Great film ->"))
    assert ftui(capsys, *base, "-p", "-")[1] == plain
    code, out, _ = ftui(capsys, *base, "-p", "Great film ->", "--echo", "-n", "2")
    assert out == (
        f"===== Completion 0 =====\nGreat film ->{plain}===== Completion 1 =====\n"
        f"Great film ->{plain}"
    )
    code, out, _ = ftui(
        capsys,
        *base,
        "-p",
        "x",
        "--json",
        "--logprobs",
        "1",
        "--stop",
        "zz",
        "--logit-bias",
        "0=-100",
        "--seed",
        "1",
    )
    body = json.loads(out)
    assert body["object"] == "text_completion" and body["choices"][0]["logprobs"]["tokens"]
    with pytest.raises(SystemExit, match="TOKEN_ID=BIAS"):
        main([*base, "-p", "x", "--logit-bias", "fish"])
    code, _, err = ftui(capsys, *base, "-p", "x", "--stream", "-n", "2")
    assert code == 2 and "--json" in err
    code, _, err = ftui(capsys, "complete", "-m", "nope", "-p", "x")
    assert code == 1 and "(HTTP status code: 404)" in err


def chat_process(server, home, *argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
    return subprocess.run(
        [sys.executable, "-m", "ftui", "chat", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_chat(server, home, capsys, monkeypatch):
    base = ["-m", "tiny", "-M", "5", "-t", "0", "--system", "Be brief."]
    done = chat_process(server, home, *base, "Hello?")
    assert done.returncode == 0, done.stderr
    streamed = done.stdout
    assert streamed.endswith("\n") and len(streamed) > 1
    # the message from stdin when it is not a terminal; the same reply whole or streamed
    done = chat_process(server, home, *base, "--no-stream", stdin="Hello?")
    assert (done.returncode, done.stdout) == (0, streamed), done.stderr
    done = chat_process(server, home, "-m", "no-such-model", "Hello?")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Error: ") and "no-such-model" in done.stderr

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    code, out, _ = ftui(capsys, "chat", *base, "Hello?", "--json")
    body = json.loads(out)
    assert code == 0 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] + "\n" == streamed


def test_chat_conversation_on_a_terminal(server, home, capsys, monkeypatch):
    """Each line is a turn with the transcript so far; an empty line ends the conversation."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    base = ["chat", "-m", "tiny", "-M", "4", "-t", "0"]
    monkeypatch.setattr("sys.stdin", Terminal("Hello?\nAnd then?\n\nnot read\n"))
    code, out, _ = ftui(capsys, *base)
    first = ftui(capsys, *base, "Hello?")[1]
    assert code == 0 and out.startswith("> " + first + "> ") and out.endswith("\n> ")
    assert out.count("> ") == 3
    monkeypatch.setattr("sys.stdin", Terminal(""))
    assert ftui(capsys, *base) == (0, "> \n", "")
    code, _, err = ftui(capsys, *base, "--json")
    assert code == 2 and "--json needs a MESSAGE" in err
