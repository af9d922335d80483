"""Strings from the server never reach the terminal as escape sequences, in any `ftui` command.

The hostile strings are written into the real server's database while it is stopped (a file
name, a fine-tuned model id and its owner, a job's model names, error and event messages), as
an older server or a damaged data dir could hold them; the commands then run as subprocesses.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ftui.textsafe import one_line, safe_json, visible
from tests.apihelpers import upload

# Window title, bell, clear screen, an 8-bit CSI, a right-to-left override and DEL.
HOSTILE = "x\x1b]0;PWNED\x07\x1b[2J\x9b31m\u202eevil\x7f.jsonl"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\x7f")


def test_the_symbols_keep_one_character_per_character():
    text = "a\x1b[31mb\tc\nd\x9b\u202e\ud800\x7f"
    shown = visible(text)
    assert len(shown) == len(text) and "\t" in shown and "\n" in shown
    assert not any(c in shown for c in (*RAW, "\ud800"))
    assert shown.startswith("a␛[31mb")
    assert "\t" not in one_line(text) and "\n" not in one_line(text)
    assert visible("plain ☕ text") == "plain ☕ text"
    dumped = safe_json({"k": text})
    assert json.loads(dumped.replace("\\ud800", "?"))["k"] == text.replace("\ud800", "?")
    assert not any(c in dumped for c in (*RAW, "\ud800")) and "☕" in safe_json("☕")


def _wait_status(client: httpx.Client, job_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/fine_tuning/jobs/{job_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.1)


def test_commands_show_hostile_server_strings_as_symbols(server_factory, make_training_file):
    srv = server_factory()
    with httpx.Client(base_url=srv.base_url, timeout=30) as client:
        file_id = upload(client, make_training_file(n=8))["id"]
        job = client.post(
            "/fine_tuning/jobs", json={"training_file": file_id, "model": "tiny"}
        ).json()
        client.post(f"/fine_tuning/jobs/{job['id']}/cancel")
        _wait_status(client, job["id"], "cancelled")
    srv.stop()

    db = sqlite3.connect(srv.data_dir / "ftui.db")
    with db:
        db.execute("UPDATE files SET filename = ?", (HOSTILE,))
        row = db.execute("SELECT body FROM jobs WHERE id = ?", (job["id"],)).fetchone()
        body = json.loads(row[0])
        body.update(
            fine_tuned_model="ft:tiny:" + HOSTILE,
            error={"code": "x", "message": HOSTILE, "param": None},
        )
        db.execute(
            "UPDATE jobs SET status = 'failed', body = ? WHERE id = ?",
            (json.dumps(body), job["id"]),
        )
        db.execute("UPDATE events SET message = ?", (HOSTILE,))
        db.execute(
            "INSERT INTO models VALUES (?, 1, ?, ?, 'tiny', ?, 'fine-tuned')",
            ("ft:tiny:" + HOSTILE, "org-" + HOSTILE, job["id"], str(srv.data_dir / "none")),
        )
    db.close()
    srv.start()

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FTUI_"))},
        "OPENAI_BASE_URL": srv.base_url,
        "XDG_CACHE_HOME": str(srv.data_dir / "client-cache"),
        "XDG_CONFIG_HOME": str(srv.data_dir / "client-config"),
    }
    commands = [
        ["files"],
        ["files", "--json"],
        ["models"],
        ["models", "--json"],
        ["jobs"],
        ["jobs", "--json"],
        ["follow", job["id"]],
        ["wait", job["id"]],
    ]

    def ftui(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ftui", *argv],
            env=env,
            capture_output=True,
            timeout=120,
        )

    with ThreadPoolExecutor(4) as pool:
        runs = dict(zip(map(" ".join, commands), pool.map(ftui, commands), strict=True))
    for name, done in runs.items():
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == (1 if name.startswith("wait") else 0), (name, err)
        for text in (out, err):
            assert not any(c in text for c in RAW), (name, text)
        if "--json" not in name:
            assert "evil" in out, (name, out)  # shown, as symbols
    # JSON output escapes them and keeps the values exactly.
    assert HOSTILE in [f["filename"] for f in json.loads(runs["files --json"].stdout)]
    models = json.loads(runs["models --json"].stdout)
    assert {"id": "ft:tiny:" + HOSTILE, "owned_by": "org-" + HOSTILE}.items() <= next(
        m for m in models if m["id"].endswith(".jsonl")
    ).items()
    (listed,) = json.loads(runs["jobs --json"].stdout)
    assert listed["error"]["message"] == HOSTILE
    assert "␛]0;PWNED␇␛[2J" in runs["files"].stdout.decode()
    assert f"Job failed: {visible(HOSTILE)}" in runs[f"follow {job['id']}"].stdout.decode()


def test_prepare_data_shows_hostile_file_contents_as_symbols(tmp_path, capsys):
    from ftui.cli import main

    path = tmp_path / "data.jsonl"
    rows = [{"prompt": f"p{i}", "completion": f" c{i}", HOSTILE: "x"} for i in range(3)]
    rows.append({"prompt": "\ud800", "completion": " d"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for argv in (["prepare-data", str(path), "-q"], ["prepare-data", str(path), "--json"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, err
        for text in (out, err):
            assert not any(c in text for c in (*RAW, "\ud800")), text
    report = json.loads(out)["report"]
    assert HOSTILE in report["findings"][1]["details"]["columns"]
    assert "lone surrogate" in json.dumps(report)


def test_the_tui_event_lines_and_status_words_show_symbols():
    from types import SimpleNamespace

    from ftui.widgets.event_log import format_event
    from ftui.widgets.status import status_text

    line = format_event(SimpleNamespace(created_at=0, level="info", message=HOSTILE + "\nnext"))
    assert not any(c in line for c in RAW) and "evil" in line and "⏎ next" in line
    assert not any(c in status_text(HOSTILE).plain for c in RAW)
