"""Shared helpers for the Pilot tests of the terminal app (tests/test_tui_*.py).

Build the real app against the real test server, with a config file and a cache of its own::

    from tests.tui_support import make_app, wait_for

    async def test_something(server, tmp_path):
        app = make_app(server, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.online is True)
            ...

Nothing here sleeps to synchronise: ``wait_for`` polls a predicate on the app's state, letting
the app run between checks, and fails with a clear message (and the screen's text) on timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ftui.app import FtuiApp
from ftui.config import Config

#: The profile ``make_app`` creates for the test server.
PROFILE = "test"


def write_config(
    tmp_path: Path,
    server: Any | None = None,
    *,
    profile: str = PROFILE,
    dialect: str = "auto",
    extra_profiles: Mapping[str, Mapping[str, str]] | None = None,
    keymap: Mapping[str, str] | None = None,
    default_profile: str | None = None,
    tui: Mapping[str, str] | None = None,
) -> Path:
    """Write ``tmp_path/config.toml`` with a profile for ``server`` (any object with
    ``base_url``, or a URL string) plus ``extra_profiles`` and a ``[keymap]`` table."""
    lines: list[str] = []
    if default_profile:
        lines.append(f"default_profile = {json.dumps(default_profile)}")
    profiles: dict[str, Mapping[str, str]] = {}
    if server is not None:
        url = server if isinstance(server, str) else server.base_url
        profiles[profile] = {"base_url": url, "dialect": dialect}
    profiles.update(extra_profiles or {})
    for name, table in profiles.items():
        lines.append(f"[profiles.{json.dumps(name)}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in table.items())
    if keymap:
        lines.append("[keymap]")
        lines.extend(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in keymap.items())
    if tui:
        lines.append("[tui]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in tui.items())
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_app(
    server: Any,
    tmp_path: Path,
    *,
    profile: str = PROFILE,
    dialect: str = "auto",
    extra_profiles: Mapping[str, Mapping[str, str]] | None = None,
    keymap: Mapping[str, str] | None = None,
    cache_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    tui: Mapping[str, str] | None = None,
) -> FtuiApp:
    """An :class:`FtuiApp` whose active profile ``profile`` points at ``server``.

    The config file is ``tmp_path/config.toml`` and the cache ``tmp_path/cache.sqlite3`` (pass
    ``cache_path`` to share one between two apps). ``environ`` defaults to an empty mapping so
    no ``OPENAI_*`` variable of the machine running the tests leaks in.
    """
    config_path = write_config(
        tmp_path,
        server,
        profile=profile,
        dialect=dialect,
        extra_profiles=extra_profiles,
        keymap=keymap,
        tui=tui,
    )
    return FtuiApp(
        profile,
        config=Config.load(config_path),
        cache_path=cache_path or tmp_path / "cache.sqlite3",
        environ={} if environ is None else environ,
    )


async def wait_for(
    pilot: Any,
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    message: str | None = None,
) -> Any:
    """Run the app until ``predicate()`` is truthy; return its value.

    Fails after ``timeout`` seconds with ``message`` and the text of the current screen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message or predicate}\n"
                f"screen: {type(pilot.app.screen).__name__}\n{_safe_text(pilot.app)}"
            )
        await pilot.pause(0.02)


async def wait_for_screen(pilot: Any, cls: type, timeout: float = 15.0) -> Any:
    """Wait until the active screen is an instance of ``cls``; return it."""
    await wait_for(
        pilot, lambda: isinstance(pilot.app.screen, cls), timeout, f"screen {cls.__name__}"
    )
    return pilot.app.screen


async def wait_for_text(pilot: Any, *texts: str, timeout: float = 15.0) -> str:
    """Wait until the screen shows every one of ``texts``; return the screen's text."""
    await wait_for(
        pilot,
        lambda: all(t in screen_text(pilot.app) for t in texts),
        timeout,
        f"the screen to show {texts}",
    )
    return screen_text(pilot.app)


def screen_text(app: Any) -> str:
    """The plain text the current screen shows (for assertions and failure messages)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)


def _safe_text(app: Any) -> str:
    try:
        return screen_text(app)
    except Exception as exc:  # noqa: BLE001 - only a diagnostic
        return f"(screen text unavailable: {exc})"


async def wait_for_worker_idle(app: Any, group: str, timeout: float = 30.0) -> None:
    """Wait until no worker of ``group`` is running (workers anywhere in the app)."""
    deadline = time.monotonic() + timeout
    while any(w.group == group and not w.is_finished for w in app.workers):
        if time.monotonic() > deadline:
            raise AssertionError(f"workers of group {group!r} still running after {timeout}s")
        await asyncio.sleep(0.02)


# -- an app with no server: cached data only ------------------------------------------------------

#: A URL where nothing listens (port 9, "discard"): every request fails with connection refused.
DEAD_URL = "http://127.0.0.1:9/v1"
OFFLINE_PROFILE = "offline"
T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC: fixed times keep screens and snapshots stable


def job_json(
    i: int,
    status: str = "succeeded",
    *,
    model: str = "ada",
    suffix: str | None = None,
    n_epochs: int = 2,
    error: str | None = None,
) -> dict[str, Any]:
    """A current-dialect job as the API sends it, with a fixed id and times."""
    created = T0 + 60 * i
    done = status in ("succeeded", "failed", "cancelled")
    return {
        "id": f"ftjob-{i:06d}",
        "object": "fine_tuning.job",
        "created_at": created,
        "finished_at": created + 50 if done else None,
        "status": status,
        "model": model,
        "fine_tuned_model": f"ft:{model}:personal:{suffix or ''}:{i:08d}"
        if status == "succeeded"
        else None,
        "organization_id": "org-personal",
        "hyperparameters": {"n_epochs": n_epochs, "batch_size": 8, "learning_rate_multiplier": 0.1},
        "training_file": f"file-train{i:06d}",
        "validation_file": None,
        "result_files": [f"file-result{i:06d}"] if status == "succeeded" else [],
        "trained_tokens": 1000 + i if done else None,
        "error": {"message": error, "code": "training_failed", "param": None} if error else None,
        "seed": 42,
        "estimated_finish": None,
        "user_provided_suffix": suffix,
    }


def event_json(job_index: int, j: int, total: int) -> dict[str, Any]:
    """A metrics event of a current-dialect job (step ``j`` of ``total``)."""
    loss = 2.0 * 0.97**j + 0.05 * ((j * 7919) % 11) / 11
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{job_index:06d}-{j:07d}",
        "created_at": T0 + 60 * job_index + j,
        "level": "info",
        "message": f"Step {j}/{total}: training loss={loss:.2f}",
        "type": "metrics",
        "data": {"step": j, "train_loss": loss, "total_steps": total},
    }


def result_rows(n: int, *, validation: bool = True) -> list[dict[str, Any]]:
    """Rows of a current-dialect results file with ``n`` steps."""
    rows = []
    for j in range(1, n + 1):
        loss = 2.0 * 0.97**j + 0.05 * ((j * 7919) % 11) / 11
        row: dict[str, Any] = {"step": j, "train_loss": loss, "train_accuracy": 1 - loss / 3}
        if validation and j % 5 == 0:
            row.update(valid_loss=loss * 1.1, valid_mean_token_accuracy=1 - loss / 2.5)
        rows.append(row)
    return rows


def seed_cache(
    cache_path: Path,
    namespace: str,
    jobs: list[dict[str, Any]] = (),  # type: ignore[assignment]
    events: Mapping[str, list[dict[str, Any]]] | None = None,
    results: Mapping[str, list[dict[str, Any]]] | None = None,
) -> None:
    """Write jobs, events and results rows into a cache file, as the client would have."""
    from ftui.cache import Cache
    from ftui.types import Job, JobEvent, ResultRow

    with Cache(cache_path) as cache:
        pc = cache.profile(namespace)
        pc.put_jobs([Job.from_api(j) for j in jobs], complete=True)
        for job_id, evs in (events or {}).items():
            pc.record_events(job_id, 0, [JobEvent.from_api(e) for e in evs], "poll")
        for job_id, rows in (results or {}).items():
            pc.put_results(job_id, [ResultRow(r) for r in rows])


def make_offline_app(
    tmp_path: Path,
    *,
    jobs: list[dict[str, Any]] = (),  # type: ignore[assignment]
    events: Mapping[str, list[dict[str, Any]]] | None = None,
    results: Mapping[str, list[dict[str, Any]]] | None = None,
    keymap: Mapping[str, str] | None = None,
    extra_profiles: Mapping[str, Mapping[str, str]] | None = None,
    tui: Mapping[str, str] | None = None,
) -> FtuiApp:
    """An app whose profile ``offline`` points where no server listens, its cache seeded.

    Everything it shows comes from the cache; requests fail at once (no retries), so the app
    goes offline quickly and deterministically.
    """
    cache_path = tmp_path / "cache.sqlite3"
    seed_cache(cache_path, f"{OFFLINE_PROFILE}@{DEAD_URL}", list(jobs), events, results)
    app = make_app(
        DEAD_URL,
        tmp_path,
        profile=OFFLINE_PROFILE,
        keymap=keymap,
        extra_profiles=extra_profiles,
        cache_path=cache_path,
        tui=tui,
    )
    app.client_options = {"max_retries": 0}
    return app


# -- snapshots of offline screens ------------------------------------------------------------------

#: The terminal sizes every snapshot is taken at.
SIZES = [(80, 24), (120, 40)]


def no_workers(app: Any, *groups: str) -> bool:
    """True when no worker of ``groups`` is running."""
    return not any(w.group in groups and not w.is_finished for w in app.workers)


async def settle_offline(pilot: Any, ready: Callable[[Any], Any]) -> None:
    """Wait until the app is offline, its toasts posted and ``ready(app)``; clear the toasts."""
    from textual.widgets import Input

    app = pilot.app

    def done() -> bool:
        return (
            app.online is False
            and any(n.title == "Offline" for n in app._notifications)
            and ready(app)
        )

    await wait_for(pilot, done, timeout=20, message="settled offline")
    for box in app.screen.query(Input):
        box.cursor_blink = False
    app.clear_notifications()
    await pilot.pause()
