"""Profiles: which servers ftui knows, which one is active, which ones answer.

Each profile's reachability is checked in its own worker (``GET /models``, no retries, a short
timeout) with a throw-away client that has no cache; the active profile shows the app's own
online state. An embedded profile that is not active is only probed if its server is already
running: checking never starts a server. Keys are never shown, only where they come from
(``OPENAI_API_KEY (set)``). Adding or editing a profile writes the config file (atomically,
mode 0600, in a thread); the key stays in its environment variable or key file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static

from ftui.config import BUILTIN_PROFILES, DIALECTS, ConfigError, Profile
from ftui.widgets.base import TableScreen
from ftui.widgets.table import VimDataTable

if TYPE_CHECKING:
    from ftui.config import Config

PROBE_TIMEOUT = 5.0

COLUMNS = (
    ("active", " "),
    ("name", "Profile"),
    ("reach", "Reachable"),
    ("where", "Server"),
    ("key", "Key from"),
    ("dialect", "Dialect"),
    ("org", "Organization"),
)


def key_source(profile: Profile, environ: Any) -> str:
    """Where the profile's key comes from, and whether it is there; never the key."""
    if profile.api_key_env:
        state = "set" if str(environ.get(profile.api_key_env, "")).strip() else "missing"
        return f"${profile.api_key_env} ({state})"
    if profile.api_key_file:
        return f"file {os.path.basename(profile.api_key_file)}"
    return "no key"


def where(profile: Profile) -> str:
    return profile.base_url or "embedded (ftui serve)"


REACH = {
    "ok": ("✔", "reachable", "green"),
    "auth": ("✖", "key refused", "bold red"),
    "down": ("✖", "unreachable", "bold red"),
    "idle": ("○", "not running (starts on use)", "dim"),
    "checking": ("…", "checking", "yellow"),
    "unknown": ("?", "unknown", "dim"),
}


def reach_text(state: str, detail: str = "") -> Text:
    glyph, word, style = REACH.get(state, REACH["unknown"])
    return Text(f"{glyph} {word}{': ' + detail if detail else ''}", style=style)


async def probe(profile: Profile, environ: Any) -> tuple[str, str]:
    """(state, detail) of a profile that is not the active one. Never starts a server."""
    from ftui.client import APIConnectionError, APIError, AuthenticationError, Client
    from ftui.local_server import recorded_url

    base_url = profile.base_url
    if base_url is None:
        base_url = await asyncio.to_thread(recorded_url)
        if base_url is None:
            return "idle", ""
    try:
        key = profile.api_key(environ)
    except ConfigError as exc:
        return "auth", str(exc)
    client = Client(
        base_url,
        api_key=key,
        organization=profile.organization,
        max_retries=0,
        timeout=PROBE_TIMEOUT,
        cache=None,
    )
    try:
        await client.models.list()
    except AuthenticationError:
        return "auth", "401"
    except APIConnectionError:
        return ("idle", "") if profile.base_url is None else ("down", "")
    except APIError as exc:
        return "down", str(exc)[:60]
    finally:
        await client.aclose()
    return "ok", ""


# --------------------------------------------------------------------------- the form


class ProfileForm(ModalScreen["Profile | None"]):
    """Add or edit a profile: name, base URL, key env var, organization, dialect."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="profile_form.cancel"),
        Binding("ctrl+j", "save", "Save", id="profile_form.save", key_display="^j"),
    ]

    def __init__(self, existing: Profile | None, taken: set[str]) -> None:
        super().__init__()
        self.existing = existing
        self.taken = taken

    def compose(self) -> ComposeResult:
        p = self.existing
        with Vertical():
            title = f"Edit profile {p.name}" if p else "Add a profile"
            yield Label(title, id="pf-title", markup=False)
            with Horizontal(classes="pf-row"):
                yield Label("name")
                yield Input(p.name if p else "", id="pf-name", compact=True, disabled=bool(p))
            with Horizontal(classes="pf-row"):
                yield Label("base URL")
                yield Input(
                    (p.base_url or "") if p else "",
                    placeholder="https://api.openai.com/v1 (empty: the embedded server)",
                    id="pf-url",
                    compact=True,
                )
            with Horizontal(classes="pf-row"):
                yield Label("key env var")
                yield Input(
                    (p.api_key_env or "") if p else "",
                    placeholder="OPENAI_API_KEY",
                    id="pf-env",
                    compact=True,
                )
            with Horizontal(classes="pf-row"):
                yield Label("organization")
                yield Input(
                    (p.organization or "") if p else "",
                    placeholder="org-… (optional)",
                    id="pf-org",
                    compact=True,
                )
            with Horizontal(classes="pf-row"):
                yield Label("dialect")
                yield Select(
                    [(d, d) for d in DIALECTS],
                    value=p.dialect if p else "auto",
                    allow_blank=False,
                    id="pf-dialect",
                    compact=True,
                )
            note = ""
            if p is not None and p.api_key_file:
                note = f"The key file {p.api_key_file} is kept. "
            yield Static(
                note + "Keys never go in the config file: name the environment variable that "
                "holds the key. ^j or enter saves, esc cancels.",
                id="pf-help",
                markup=False,
            )
            yield Static("", id="pf-error", markup=False)

    def on_mount(self) -> None:
        first = "#pf-url" if self.existing else "#pf-name"
        self.query_one(first, Input).focus()

    def build(self) -> Profile:
        """The profile the form describes; raises ConfigError with the problem in words."""
        name = self.query_one("#pf-name", Input).value.strip()
        if not name:
            raise ConfigError("a profile needs a name")
        if self.existing is None and name in self.taken:
            raise ConfigError(f"a profile named {name!r} exists already")
        url = self.query_one("#pf-url", Input).value.strip().rstrip("/") or None
        env = self.query_one("#pf-env", Input).value.strip() or None
        if env is not None and not env.replace("_", "").isalnum():
            raise ConfigError(f"{env!r} is not an environment variable name")
        org = self.query_one("#pf-org", Input).value.strip() or None
        dialect = self.query_one("#pf-dialect", Select).value
        base = self.existing or Profile(name=name)
        return replace(
            base,
            base_url=url,
            api_key_env=env,
            organization=org,
            dialect=str(dialect) if isinstance(dialect, str) else "auto",
        )

    def action_save(self) -> None:
        try:
            profile = self.build()
        except ConfigError as exc:
            self.query_one("#pf-error", Static).update(f"✖ {exc}")
            return
        self.dismiss(profile)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    def action_cancel(self) -> None:
        self.dismiss(None)


# --------------------------------------------------------------------------- the screen


class ProfilesScreen(TableScreen):
    """Every profile: active marker, server, reachability, key source; switch, add, edit."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,s", "switch", "Switch to", id="profiles.switch"),
        Binding("a", "add", "Add", id="profiles.add"),
        Binding("e", "edit", "Edit", id="profiles.edit"),
        Binding("d", "delete", "Delete", id="profiles.delete"),
        Binding("D", "make_default", "Make default", id="profiles.default", show=False),
        Binding("r", "recheck", "Re-check", id="profiles.recheck"),
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "profiles-save": "Saving the config file",
        "profiles-edit": "Editing the profile",
    }

    TABLE_ID = "profiles-table"

    def __init__(self) -> None:
        super().__init__()
        self.reach: dict[str, tuple[str, str]] = {}
        self.names: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        table = VimDataTable(id="profiles-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="profiles-hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.watch(self.app, "online", lambda _v: self._update_active(), init=False)
        self.ftui.profile_changed.subscribe(self, lambda _p: self.rebuild(check=True))
        self.rebuild(check=True)

    # -- state -------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self.ftui.config

    @property
    def environ(self) -> Mapping[str, str]:
        return self.ftui.environ

    @property
    def active(self) -> str:
        return self.ftui.profile.name

    def _active_reach(self) -> tuple[str, str]:
        return {True: ("ok", ""), False: ("down", ""), None: ("checking", "")}[self.ftui.online]

    def _row(self, p: Profile) -> tuple:
        is_active = p.name == self.active
        marker = Text("● active", style="bold") if is_active else Text("")
        state, detail = self._active_reach() if is_active else self.reach.get(p.name, ("?", ""))
        default = " (default)" if p.name == self.config.default_profile else ""
        return (
            marker,
            p.name + default,
            reach_text(state, detail),
            where(p),
            key_source(p, self.environ),
            p.dialect,
            p.organization or "",
        )

    def rebuild(self, check: bool = False) -> None:
        table = self.table
        current = self.selected_name()
        profiles = self.config.profiles
        self.names = sorted(profiles, key=lambda n: (n != self.active, n))
        table.clear()
        for name in self.names:
            table.add_row(*self._row(profiles[name]), key=name)
        pick = current if current in self.names else self.active
        if pick in self.names:
            table.move_cursor(row=self.names.index(pick), animate=False)
        self.query_one("#profiles-hint", Static).update(
            f"Active: {self.active} · enter switches · a adds · e edits · "
            f"config: {self.config.path}"
        )
        if check:
            self.check_all()
        self.refresh_bindings()

    def _update_active(self) -> None:
        if self.active in self.names:
            state, detail = self._active_reach()
            self.table.update_cell(
                self.active, "reach", reach_text(state, detail), update_width=True
            )

    def check_all(self) -> None:
        for name in self.names:
            if name != self.active:
                self.reach[name] = ("checking", "")
                self.table.update_cell(name, "reach", reach_text("checking"), update_width=True)
                self.run_worker(
                    self._probe(self.config.profiles[name]),
                    name=f"probe:{name}",
                    group=f"profile-probe:{name}",
                    exclusive=True,
                    exit_on_error=False,
                )

    async def _probe(self, profile: Profile) -> None:
        try:
            result = await probe(profile, self.environ)
        except Exception as exc:  # noqa: BLE001 - a probe never breaks the screen
            result = ("down", f"{type(exc).__name__}")
        self.reach[profile.name] = result
        if profile.name in self.names and profile.name != self.active:
            self.table.update_cell(profile.name, "reach", reach_text(*result), update_width=True)

    def selected_name(self) -> str | None:
        return self.selected_id()

    # -- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        name = self.selected_name()
        if action in ("switch", "edit", "delete", "make_default") and name is None:
            return None
        if action == "switch" and name == self.active:
            return None
        if action == "edit" and name in BUILTIN_PROFILES:
            return None
        if action == "delete" and (name == self.active or name in BUILTIN_PROFILES):
            return None
        return True

    @on(DataTable.RowSelected, "#profiles-table")
    def _selected(self) -> None:
        self.action_switch()

    def action_switch(self) -> None:
        name = self.selected_name()
        if name and name != self.active:
            self.ftui.switch_profile(name)

    def action_recheck(self) -> None:
        self.check_all()
        self.ftui.poke()

    def action_add(self) -> None:
        self._edit(None)

    def action_edit(self) -> None:
        name = self.selected_name()
        if name and name not in BUILTIN_PROFILES:
            self._edit(self.config.profiles[name])

    @work(name="profiles-edit", group="profiles-edit", exclusive=True, exit_on_error=False)
    async def _edit(self, existing: Profile | None) -> None:
        profile = await self.app.push_screen_wait(ProfileForm(existing, set(self.config.profiles)))
        if profile is None:
            return
        self.config.set_profile(profile)
        if not await self._save():
            return
        verb = "Saved" if existing else "Added"
        self.notify(f"{verb} profile {profile.name}", markup=False)
        self.reach.pop(profile.name, None)
        self.rebuild(check=True)
        if existing is not None and existing.name == self.active and profile != existing:
            self.ftui.switch_profile(profile.name)  # reconnect with the new settings

    def action_delete(self) -> None:
        name = self.selected_name()
        if name and name != self.active and name not in BUILTIN_PROFILES:
            self._delete(name)

    @work(name="profiles-delete", group="profiles-edit", exclusive=True, exit_on_error=False)
    async def _delete(self, name: str) -> None:
        from ftui.screens.confirm import ConfirmScreen

        if not await self.app.push_screen_wait(ConfirmScreen(f"Delete profile {name}?")):
            return
        self.config.remove_profile(name)
        if await self._save():
            self.notify(f"Deleted profile {name}", markup=False)
        self.rebuild()

    def action_make_default(self) -> None:
        name = self.selected_name()
        if name:
            self.config.default_profile = name
            self._save_then_rebuild()

    @work(name="profiles-save", group="profiles-edit", exit_on_error=False)
    async def _save_then_rebuild(self) -> None:
        if await self._save():
            self.rebuild()

    async def _save(self) -> bool:
        try:
            await asyncio.to_thread(save_config, self.config)
        except (OSError, ConfigError) as exc:
            self.ftui.report_error(exc, "Saving the config file")
            return False
        return True


def save_config(config: Config) -> None:
    config.save()  # keeps the file's [keymap] table
