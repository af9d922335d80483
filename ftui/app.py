"""The ftui terminal app: one App that owns the one client and the one cache, and routes screens.

Start-up path (kept cheap on purpose): Textual, ``ftui.config`` and ``ftui.cache`` (stdlib +
platformdirs). The HTTP client (httpx) is imported in the connect worker after the first frame;
plotext is imported by the chart widget when a chart is first drawn; pandas (``ftui.prepare``) only
by the prepare screen.

Screens reach shared state through the app:

- ``app.profile`` / ``app.cache``: the resolved profile and its cache namespace (opened here,
  synchronously: the first frame is drawn from it);
- ``await app.api()``: the one :class:`ftui.client.Client`, connected on first use;
- ``app.online`` (reactive, ``None`` until known), ``app.report_error`` / ``app.report_ok``;
- ``app.jobs``: the job list (cache first, then the server; kept current by the
  :class:`ftui.jobfeed.JobFeed`), ``app.progress``, and the Signals ``app.jobs_changed``,
  ``app.progress_changed`` (a job id) and ``app.profile_changed``;
- navigation: ``open_job``, ``open_results``, ``open_console``, ``open_new_job``,
  ``switch_profile``, ``action_section``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal

from ftui.cache import Cache, ProfileCache, read_now, read_off_thread
from ftui.config import Config, ConfigError, Profile, cache_namespace
from ftui.jobfeed import JobFeed, JobStore
from ftui.keymap import check_keymap, check_tui
from ftui.messages import JobProgress
from ftui.notify import BELL, desktop_notification, status_notice, tmux_passthrough
from ftui.textsafe import visible
from ftui.types import Job

if TYPE_CHECKING:
    from ftui.client import Client, RetryNotice

#: The sections: mode name, title, module, screen class, default keys (number and F-key).
SECTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("jobs", "Jobs", "ftui.screens.jobs", "JobsScreen", "1,f2"),
    ("files", "Files", "ftui.screens.files", "FilesScreen", "2,f3"),
    ("models", "Models", "ftui.screens.models", "ModelsScreen", "3,f4"),
    ("console", "Console", "ftui.screens.console", "ConsoleScreen", "4,f5"),
    ("prepare", "Prepare", "ftui.screens.prepare", "PrepareScreen", "5,f6"),
    ("profiles", "Profiles", "ftui.screens.profiles", "ProfilesScreen", "6,f7"),
)
SECTION_TITLES = {name: title for name, title, *_ in SECTIONS}

#: Jobs read from the cache before the first frame (the rest is read right after it).
FIRST_FRAME_JOBS = 500


def _load_screen_class(module: str, cls: str) -> type[Screen]:
    return getattr(importlib.import_module(module), cls)


def _section_factory(module: str, cls: str) -> Callable[[], Screen]:
    def make() -> Screen:
        return _load_screen_class(module, cls)()

    return make


class FtuiApp(App[None]):
    """The terminal app. See the module docstring for what screens can rely on."""

    CSS_PATH = "app.tcss"
    TITLE = "ftui"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        *(
            Binding(keys, f"section('{name}')", title, id=f"section.{name}", show=False)
            for name, title, _m, _c, keys in SECTIONS
        ),
        Binding("question_mark,f1", "help", "Help", id="app.help", key_display="?"),
        Binding("q", "back_or_quit", "Back/Quit", id="app.back", show=False),
        Binding("escape", "back", "Back", id="app.back_escape", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", show=False, priority=True),
        Binding("ctrl+p", "command_palette", "Commands", id="app.palette", show=False),
    ]

    online: reactive[bool | None] = reactive(None, init=False)

    def __init__(
        self,
        profile: str | None = None,
        *,
        config: Config | None = None,
        cache_path: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        #: the environment the profiles' keys are read from (tests pass their own)
        self.environ: dict[str, str] = dict(os.environ if environ is None else environ)
        self.config = config if config is not None else Config.load()
        self.profile: Profile = self.config.resolve(profile, environ=self.environ)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._cache_db = Cache(cache_path)
        self._start_warnings = [str(w.message) for w in caught]
        self.cache: ProfileCache = self._cache_db.profile(cache_namespace(self.profile))
        # The first frame needs only the newest page of jobs; the rest is read after it.
        first = read_now(self.cache.list_jobs, limit=FIRST_FRAME_JOBS, default=[])
        self.feed = JobFeed(self.api, self, first)
        self._jobs_partial = len(first) >= FIRST_FRAME_JOBS
        #: step and total steps of running jobs, from their metrics events
        self.progress: dict[str, tuple[int, int | None]] = {}
        self.jobs_changed: Signal[None] = Signal(self, "jobs-changed")
        self.progress_changed: Signal[str] = Signal(self, "progress-changed")
        self.profile_changed: Signal[Profile] = Signal(self, "profile-changed")
        #: every escape sequence ftui wrote itself (bell, OSC 9), newest last: for tests and logs
        self.terminal_writes: list[str] = []
        self._client: Client | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._offline_reason: str | None = None
        #: keyword arguments for the client (``connect``); tests may lower the retries
        self.client_options: dict[str, Any] = {"max_retries": 2}
        self._apply_settings()
        self.animation_level = "none"
        for name, _t, module, cls, _k in SECTIONS:
            self.add_mode(name, _section_factory(module, cls))
        self._update_subtitle()

    def _apply_settings(self) -> None:
        """The config file's ``[keymap]`` and ``[tui]`` tables; problems are shown at start."""
        tables, where = self.config.app_tables, self.config.path
        keymap, problems = check_keymap(tables.get("keymap"), where)
        settings, more = check_tui(tables.get("tui"), where)
        self._setting_problems = problems + [m for m in more if m not in problems]
        if keymap:
            self.set_keymap(keymap)
        theme = settings.get("theme")
        if theme:
            if theme in self.available_themes:
                self.theme = theme
            else:
                known = ", ".join(sorted(self.available_themes))
                self._setting_problems.append(f"[tui] theme {theme!r} is unknown (known: {known})")

    @property
    def jobs(self) -> JobStore:
        return self.feed.store

    # -- start-up and shut-down ---------------------------------------------------------------
    @work(group="cache-jobs", exclusive=True, exit_on_error=False)
    async def _read_rest_of_cache(self) -> None:
        generation = self.feed.generation
        jobs = await read_off_thread(self.cache.list_jobs, default=[])
        if generation == self.feed.generation and not self.feed.baseline:  # no server list yet
            self.jobs.update(jobs)
            self.jobs_changed.publish(None)

    def on_mount(self) -> None:
        for message in self._start_warnings + self._setting_problems:
            self.notify(message, severity="warning", timeout=10)
        self.switch_mode("jobs")

    def on_ready(self) -> None:
        # After the first frame (drawn from the cache): the rest of the cache, then the client.
        if self._jobs_partial:
            self._read_rest_of_cache()
        self.run_worker(self.feed.run(), group="jobs-poller", exclusive=True, exit_on_error=False)

    async def on_unmount(self) -> None:
        await self.feed.aclose()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._cache_db.close()

    # -- the client ----------------------------------------------------------------------------
    async def api(self) -> Client:
        """The one shared client, connecting on first use.

        Raises :class:`ftui.client.APIConnectionError` when the profile cannot be connected
        (the embedded server does not start, a key file is refused…).
        """
        if self._client is not None:
            return self._client
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._client is not None:
                return self._client
            from ftui.client import APIConnectionError, APIError, connect

            profile = self.profile
            try:
                client = await connect(
                    profile,
                    config=self.config,
                    cache=self._cache_db,
                    environ=self.environ,
                    on_retry=self._on_retry,
                    **self.client_options,
                )
            except APIError as exc:
                self._set_offline(str(exc))
                raise
            except (ConfigError, OSError) as exc:
                self._set_offline(str(exc))
                raise APIConnectionError(f"cannot connect profile {profile.name!r}: {exc}") from exc
            if profile is not self.profile:  # the profile was switched while connecting
                await client.aclose()
                raise APIConnectionError(f"profile {profile.name!r} is no longer active")
            self._client = client
            return client

    def _on_retry(self, notice: RetryNotice) -> None:
        from ftui.client import APIConnectionError

        if isinstance(notice.error, APIConnectionError):
            self._set_offline(str(notice.error))

    # -- online state ---------------------------------------------------------------------------
    def report_ok(self) -> None:
        """A request to the server succeeded: the profile is reachable."""
        self._offline_reason = None
        self.online = True

    def report_error(self, exc: BaseException, what: str) -> None:
        """Tell the user that ``what`` failed, with the server's message; mark offline if so."""
        from ftui.client import APIConnectionError, APIError

        if isinstance(exc, APIConnectionError):
            self._set_offline(str(exc))
        if isinstance(exc, APIError):
            text = str(exc)
        elif isinstance(exc, OSError) and exc.strerror:
            text = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        # Server messages are shown as text, control characters as symbols (no terminal escapes).
        self.notify(
            visible(f"{what}: {text}"), title="Error", severity="error", timeout=8, markup=False
        )

    def _set_offline(self, reason: str) -> None:
        self._offline_reason = reason
        self.online = False

    def watch_online(self, old: bool | None, new: bool | None) -> None:
        self._update_subtitle()
        if new is False and old is not False:
            self.notify(
                f"{self.profile.name} is unreachable; showing cached data. "
                f"({self._offline_reason or 'no answer'})",
                title="Offline",
                severity="warning",
                timeout=6,
                markup=False,
            )
        elif new is True and old is False:
            self.notify(f"{self.profile.name} is reachable again", title="Online", timeout=4)
            self.poke()

    def _update_subtitle(self) -> None:
        state = {None: "connecting…", True: "● online", False: "✖ offline · stale"}[self.online]
        self.sub_title = f"{self.profile.name} · {state}"

    # -- the job feed (ftui.jobfeed.FeedListener) ----------------------------------------------
    def poke(self) -> None:
        """Ask the poller for a fresh full job list now."""
        self.feed.poke()

    def refresh_jobs(self) -> None:
        self.poke()

    def poke_soon(self) -> None:
        self.feed.poke_soon()

    def job_updated(self, job: Job) -> None:
        """A screen learnt a job's new state (after cancel, pause…): store it and tell everyone."""
        self.feed.apply([job])
        self.feed.poke_soon()

    def jobs_updated(self, changes: list[tuple[Job, str]]) -> None:
        for job, old_status in changes:
            self.notify_job_status(job, old_status)
        self.jobs_changed.publish(None)

    def job_progress(self, job_id: str, step: int, total: int | None) -> None:
        self.post_message(JobProgress(job_id, step, total))

    def on_job_progress(self, message: JobProgress) -> None:
        if message.job_id in self.jobs:  # (not a job of a profile switched away from)
            self.progress[message.job_id] = (message.step, message.total)
            self.progress_changed.publish(message.job_id)

    def reachable(self) -> None:
        self.report_ok()

    def unreachable(self, reason: str) -> None:
        self._set_offline(reason)

    def poll_failed(self, error: BaseException) -> None:
        self.report_error(error, "Refreshing jobs")

    # -- terminal notifications ----------------------------------------------------------------
    def notify_job_status(self, job: Job, old_status: str) -> None:
        """A job changed status while ftui is open: notification, bell and a desktop notice."""
        notice = status_notice(job, old_status)
        self.notify(
            visible(notice.text),
            title="Job status",
            severity=notice.severity,  # type: ignore[arg-type]
            timeout=10,
            markup=False,
        )
        self.write_to_terminal(BELL)
        self.write_to_terminal(desktop_notification(f"ftui: {notice.text}"), passthrough=True)

    def write_to_terminal(self, sequence: str, *, passthrough: bool = False) -> None:
        """Write an escape sequence of ftui's own; ``passthrough`` wraps it for tmux."""
        if passthrough and self.environ.get("TMUX"):
            sequence = tmux_passthrough(sequence)
        self.terminal_writes.append(sequence)
        if self._driver is not None and not self.is_headless:
            self._driver.write(sequence)

    # -- navigation ----------------------------------------------------------------------------
    def action_section(self, name: str) -> None:
        if name not in SECTION_TITLES:
            return
        module, cls = next((m, c) for n, _t, m, c, _k in SECTIONS if n == name)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            self.notify(
                f"{SECTION_TITLES[name]} is not available: {exc}", severity="warning", markup=False
            )
            return
        self.switch_mode(name)

    def _push(self, module: str, cls: str, *args: Any, **kwargs: Any) -> None:
        try:
            screen_cls = _load_screen_class(module, cls)
        except (ImportError, AttributeError) as exc:
            self.notify(f"{cls} is not available: {exc}", severity="warning", markup=False)
            return
        self.push_screen(screen_cls(*args, **kwargs))

    def open_job(self, job_id: str) -> None:
        self._push("ftui.screens.job_detail", "JobDetailScreen", job_id)

    def open_results(self, job_ids: list[str]) -> None:
        self._push("ftui.screens.results", "ResultsScreen", list(job_ids))

    def open_console(self, model: str | None = None, compare_with: str | None = None) -> None:
        if model is None and compare_with is None:
            self.action_section("console")
            return
        self._push("ftui.screens.console", "ConsoleScreen", model=model, compare_with=compare_with)

    def open_new_job(self, training_file: str | None = None) -> None:
        self._push("ftui.screens.new_job", "NewJobScreen", training_file=training_file)

    def action_new_job(self) -> None:
        self.open_new_job()

    def action_help(self) -> None:
        from ftui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self.screen))

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_back_or_quit(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        else:
            self.exit()

    # -- profiles ------------------------------------------------------------------------------
    def switch_profile(self, name: str) -> None:
        """Make profile ``name`` the active one: new client, its cache, back to its jobs."""
        try:
            profile = self.config.get(name)
        except ConfigError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if profile == self.profile:
            self.notify(f"{name} is already the active profile")
            return
        self.run_worker(
            self._switch_profile(profile),
            group="switch-profile",
            exclusive=True,
            exit_on_error=False,
        )

    async def _switch_profile(self, profile: Profile) -> None:
        old, self._client = self._client, None
        self.profile = profile
        self.cache = self._cache_db.profile(cache_namespace(profile))
        self.progress.clear()
        self.feed.reset([])
        self.feed.store.replace(await read_off_thread(self.cache.list_jobs, default=[]))
        self.online = None
        self._update_subtitle()
        await self.switch_mode("jobs")
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        for name, _t, module, cls, _k in SECTIONS:
            if name != "jobs" and name in self._screen_stacks:
                await self.remove_mode(name)
                self.add_mode(name, _section_factory(module, cls))
        self.profile_changed.publish(profile)
        self.jobs_changed.publish(None)
        self.notify(f"Profile: {profile.name}", timeout=3)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        self.poke()

    # -- command palette -------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for name, title, *_ in SECTIONS:
            yield SystemCommand(
                f"Go to {title}", f"Open the {title} section", lambda n=name: self.action_section(n)
            )
        yield SystemCommand("New job", "Open the new fine-tuning job form", self.open_new_job)
        yield SystemCommand("Refresh jobs", "Fetch the job list from the server now", self.poke)
        yield SystemCommand("Help", "Show the keys of this screen", self.action_help)
        for name in sorted(self.config.profiles):
            if name != self.profile.name:
                yield SystemCommand(
                    f"Switch profile: {name}",
                    f"Use profile {name}",
                    lambda n=name: self.switch_profile(n),
                )
        # Every binding of the current screen (and its focused widgets), by its description.
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.action in seen:
                continue
            if active.node is self or binding.action.startswith("section("):
                continue
            seen.add(binding.action)
            node, action = active.node, binding.action
            yield SystemCommand(
                binding.description,
                binding.tooltip or f"key: {binding.key_display or key}",
                lambda n=node, a=action: self._run_binding(n, a),
            )
        for job in self.jobs.all()[:200]:
            yield SystemCommand(
                f"Open job {job.id}",
                f"{job.status} · {job.model} · {job.fine_tuned_model or ''}",
                lambda j=job.id: self.open_job(j),
                discover=False,
            )
        yield from super().get_system_commands(screen)

    def _run_binding(self, node: Any, action: str) -> None:
        self.call_later(self.run_action, action, node)
