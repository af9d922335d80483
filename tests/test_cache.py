"""The SQLite job-state cache (ftui/cache.py): round trips, de-duplication, corruption, writers."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftui.cache import Cache, CacheWarning, FollowCursor
from ftui.types import FileObject, Job, JobEvent, Model, ResultRow

LEGACY_JOB = {
    "id": "ft-abc",
    "object": "fine-tune",
    "model": "ada",
    "created_at": 100,
    "updated_at": 130,
    "status": "succeeded",
    "fine_tuned_model": "ada:ft-personal-2024-01-01-00-00-00",
    "hyperparams": {"n_epochs": 4, "batch_size": 1, "prompt_loss_weight": 0.01},
    "training_files": [{"id": "file-t", "object": "file", "filename": "t.jsonl", "bytes": 9}],
    "validation_files": [],
    "result_files": [{"id": "file-r", "object": "file", "filename": "compiled_results.csv"}],
    "events": [{"object": "fine-tune-event", "created_at": 100, "level": "info", "message": "x"}],
}
CURRENT_JOB = {
    "id": "ftjob-xyz",
    "object": "fine_tuning.job",
    "model": "babbage-002",
    "created_at": 200,
    "status": "running",
    "training_file": "file-t",
    "validation_file": None,
    "result_files": [],
    "hyperparameters": {"n_epochs": "auto"},
    "error": {},
    "seed": 7,
}


def event(i: int, with_id: bool = True) -> JobEvent:
    raw = {"object": "e", "created_at": 1000 + i, "level": "info", "message": f"event {i}"}
    if with_id:
        raw["id"] = f"ftevent-{i}"
    return JobEvent.from_api(raw)


def test_round_trips_per_profile(tmp_path):
    with Cache(tmp_path / "c.sqlite3") as cache:
        a, b = cache.profile("a"), cache.profile("b@https://x.test/v1")
        a.put_jobs([Job.from_api(LEGACY_JOB), Job.from_api(CURRENT_JOB)], complete=True)
        a.put_files([FileObject.from_api({"id": "file-t", "filename": "t.jsonl", "bytes": 9})])
        a.put_models([Model.from_api({"id": "ada", "owned_by": "ftui", "created": 0})])
        a.put_results("ft-abc", [ResultRow({"step": 1, "training_loss": 0.5, "x": None})])
        a.set_meta("capabilities", {"dialect": "current", "legacy": True})

    with Cache(tmp_path / "c.sqlite3") as cache:  # a restart of ftui
        a, b = cache.profile("a"), cache.profile("b@https://x.test/v1")
        assert [j.id for j in a.list_jobs()] == ["ftjob-xyz", "ft-abc"]  # newest first
        legacy = a.get_job("ft-abc")
        assert legacy == Job.from_api(LEGACY_JOB)
        assert (legacy.dialect, legacy.result_files, legacy.events[0].message) == (
            "legacy",
            ("file-r",),
            "x",
        )
        assert a.list_files()[0].filename == "t.jsonl"
        assert a.list_models()[0].id == "ada"
        assert a.results("ft-abc")[0]["training_loss"] == 0.5
        assert a.get_meta("capabilities") == {"dialect": "current", "legacy": True}
        assert b.list_jobs() == [] and b.get_job("ft-abc") is None and b.results("ft-abc") is None
        assert b.get_meta("capabilities") is None

        a.put_jobs([Job.from_api(CURRENT_JOB)], complete=True)  # the whole list: ft-abc is gone
        assert [j.id for j in a.list_jobs()] == ["ftjob-xyz"]
        a.remove_model("ada")
        a.remove_file("file-t")
        assert a.list_models() == [] and a.list_files() == []


def test_events_are_append_only_and_deduplicated(tmp_path):
    with Cache(tmp_path / "c.sqlite3") as cache:
        p = cache.profile("p")
        assert p.follow_cursor("j") == FollowCursor(0, None, None)
        p.record_events("j", 0, [event(0), event(1)], mode="poll")
        # An overlapping write (another process, or a replayed stream) adds only what is new.
        cursor = p.record_events("j", 1, [event(1), event(2)], mode="poll")
        assert cursor == FollowCursor(3, "ftevent-2", "poll")
        # The same id at another position is not stored twice either.
        p.record_events("j", 3, [event(2)])
        assert [e.message for e in p.events("j")] == ["event 0", "event 1", "event 2"]
        with pytest.raises(ValueError, match="start at 5 but only 3"):
            p.record_events("j", 5, [event(5)])
        # Legacy events have no ids: position alone de-duplicates them.
        p.record_events("legacy", 0, [event(0, False), event(1, False)], mode="sse")
        cursor = p.record_events("legacy", 0, [event(0, False), event(1, False), event(2, False)])
        assert cursor == FollowCursor(3, None, "sse")
        assert [e.id for e in p.events("legacy")] == [None, None, None]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), max_size=25))
def test_overlapping_writes_always_leave_the_true_history(tmp_path_factory, writes):
    """Whatever overlapping slices of the history are written, the cache holds its prefix."""
    history = [event(i) for i in range(40)]
    with Cache(tmp_path_factory.mktemp("h") / "c.sqlite3") as cache:
        p = cache.profile("p")
        for start, n in writes:
            start = min(start, p.follow_cursor("j").count)
            p.record_events("j", start, history[start : start + n])
        stored = p.events("j")
        assert stored == history[: len(stored)]
        assert p.follow_cursor("j").count == len(stored)


def test_garbage_file_is_moved_aside_with_a_warning(tmp_path):
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.warns(CacheWarning, match="unusable"), Cache(path) as cache:
        cache.profile("p").put_job(Job.from_api(CURRENT_JOB))
        assert cache.profile("p").get_job("ftjob-xyz") is not None
    aside = [f for f in tmp_path.iterdir() if ".corrupt-" in f.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_damaged_database_pages_are_detected(tmp_path):
    path = tmp_path / "cache.sqlite3"
    with Cache(path) as cache:
        p = cache.profile("p")
        p.record_events("j", 0, [event(i) for i in range(300)])
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the damage hits real pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 4 * page] = b"\xff" * (2 * page)
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning), Cache(path) as cache:
        assert cache.profile("p").events("j") == []  # rebuilt, empty, working
        cache.profile("p").record_events("j", 0, [event(0)])
        assert cache.profile("p").follow_cursor("j").count == 1


def test_unopenable_path_is_set_aside(tmp_path):
    path = tmp_path / "cache.sqlite3"
    path.mkdir()  # a directory where the file should be: sqlite cannot open it
    with pytest.warns(CacheWarning), Cache(path) as cache:
        cache.profile("p").set_meta("k", 1)
        assert cache.profile("p").get_meta("k") == 1
    assert path.is_file()


def test_older_schema_is_rebuilt_quietly(tmp_path, recwarn):
    path = tmp_path / "cache.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (x)")
        conn.execute("PRAGMA user_version = 99")
    with Cache(path) as cache:
        cache.profile("p").put_job(Job.from_api(CURRENT_JOB))
        assert cache.profile("p").get_job("ftjob-xyz").status == "running"
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]


def _writer(path: str, who: int, n: int) -> None:
    cache = Cache(Path(path))
    p = cache.profile("p")
    for i in range(n):
        # Both processes follow the same job (same history) and list jobs of their own.
        count = p.follow_cursor("shared").count
        p.record_events("shared", count, [event(count)], mode="poll")
        p.put_job(Job.from_api({**CURRENT_JOB, "id": f"ftjob-{who}-{i}", "created_at": i}))
    cache.close()


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "cache.sqlite3"
    Cache(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), who, 150)) for who in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    with Cache(path) as cache:
        p = cache.profile("p")
        assert len(p.list_jobs()) == 300
        stored = p.events("shared")
        # Every write landed; none was doubled; positions stayed contiguous.
        assert len(stored) >= 150
        assert stored == [event(i) for i in range(len(stored))]


def test_list_jobs_can_return_only_the_newest(tmp_path):
    from ftui.types import Job

    with Cache(tmp_path / "c.sqlite3") as cache:
        p = cache.profile("p")
        p.put_jobs(
            [
                Job.from_api(
                    {
                        "id": f"ftjob-{i}",
                        "object": "fine_tuning.job",
                        "created_at": i,
                        "status": "succeeded",
                        "model": "ada",
                    }
                )
                for i in range(5)
            ]
        )
        assert [j.id for j in p.list_jobs(limit=2)] == ["ftjob-4", "ftjob-3"]
        assert len(p.list_jobs()) == 5


def test_a_cleanly_closed_cache_skips_the_integrity_scan_and_a_touched_one_does_not(tmp_path):
    path = tmp_path / "cache.sqlite3"
    with Cache(path) as cache:
        cache.profile("p").set_meta("k", 1)
    probe = Cache.__new__(Cache)
    probe.path = path
    assert probe._closed_cleanly() is True
    path.write_bytes(path.read_bytes())  # changed behind our back (new mtime)
    assert probe._closed_cleanly() is False


def test_copies_set_aside_do_not_pile_up(tmp_path):
    from ftui.cache import KEEP_CORRUPT

    path = tmp_path / "cache.sqlite3"
    for round_ in range(KEEP_CORRUPT + 3):
        path.write_bytes(f"garbage {round_} ".encode() * 200)
        with pytest.warns(CacheWarning, match="unusable"), Cache(path) as cache:
            cache.profile("p").set_meta("k", round_)
    aside = sorted(f.name for f in tmp_path.iterdir() if ".corrupt-" in f.name)
    assert len(aside) == KEEP_CORRUPT
    # The newest ones stay: the last rounds' garbage.
    kept = {(tmp_path / name).read_bytes().split()[1] for name in aside}
    assert kept == {str(r).encode() for r in range(3, KEEP_CORRUPT + 3)}


def test_cache_files_are_private_whatever_the_umask(tmp_path, monkeypatch):
    import stat

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from ftui.cache import default_cache_path

    path = default_cache_path()
    old = os.umask(0o002)
    try:
        with Cache() as cache:
            cache.profile("p").set_meta("k", 1)
            wal = Path(f"{path}-wal")
            assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # Files and the directory left open by an older ftui are tightened at the next open.
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o644)
        Cache().close()
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # A directory the caller chose keeps its mode; the database in it is still private.
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o775)
        Cache(shared / "c.sqlite3").close()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o775
        assert stat.S_IMODE((shared / "c.sqlite3").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_corrupt_cache_is_reported_once_by_a_command(tmp_path):
    import subprocess
    import sys

    cache_dir = tmp_path / "xdg-cache" / "ftui"
    cache_dir.mkdir(parents=True)
    (cache_dir / "cache.sqlite3").write_bytes(b"not a database at all " * 200)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FTUI_"))},
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens: the list fails quickly
    }
    done = subprocess.run(
        [sys.executable, "-m", "ftui", "jobs"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stderr.count("unusable") == 1, done.stderr
    assert "CacheWarning" not in done.stderr and "cache.py" not in done.stderr
    assert done.stderr.startswith("ftui: warning: cache ")
    assert len(list(cache_dir.glob("cache.sqlite3.corrupt-*"))) == 1
