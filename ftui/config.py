"""Profiles: where ftui talks to, and with which key.

The config file is TOML at ``<user config dir>/ftui/config.toml``::

    default_profile = "openai"

    [profiles.openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"     # the env var that holds the key, or:
    # api_key_file = "/home/me/.config/ftui/keys/openai.key"   (must be mode 0600)
    organization = "org-..."
    dialect = "auto"                   # auto | current | legacy

Keys never live in this file: a profile names an environment variable or a 0600 key file.
A profile without ``base_url`` is the embedded server: ``local`` is built in, and ftui starts
``ftui serve`` itself (loopback, free port, data dir under the user data dir) when it is used and
no server is running (:mod:`ftui.local_server`).

Which profile is used when none is named (no ``--profile``, no ``FTUI_PROFILE``):
``OPENAI_BASE_URL`` set → the ad-hoc ``env`` profile (that URL, key from ``OPENAI_API_KEY``);
else the config's ``default_profile``; else ``OPENAI_API_KEY`` set → ``env`` at
``https://api.openai.com/v1``; else ``local``. A named profile never picks up ``OPENAI_API_KEY``
unless it names that variable, so a key is only ever sent where a profile says it goes.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from ftui import datadir

APP = "ftui"
DIALECTS = ("auto", "current", "legacy")
LOCAL = "local"
ENV_PROFILE = "env"
OPENAI_BASE_URL = "https://api.openai.com/v1"


class ConfigError(Exception):
    """A config, profile or key file that cannot be used; the message says how to fix it."""


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def data_dir() -> Path:
    return datadir.app_data_dir()


@dataclass(frozen=True)
class Profile:
    """A named connection. Holds where the key is, never the key itself."""

    name: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    organization: str | None = None
    dialect: str = "auto"

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ConfigError(
                f"profile {self.name!r}: dialect must be one of {', '.join(DIALECTS)}, "
                f"not {self.dialect!r}"
            )
        if self.base_url is not None and not re.match(r"https?://", self.base_url):
            raise ConfigError(
                f"profile {self.name!r}: base_url must start with http:// or https:// "
                f"(got {self.base_url!r})"
            )

    @property
    def is_embedded(self) -> bool:
        """True for a profile served by ftui's own embedded server (no base_url)."""
        return not self.base_url

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from the named env var, else from the 0600 key file, else None."""
        env = os.environ if environ is None else environ
        if self.api_key_env:
            value = env.get(self.api_key_env, "").strip()
            if value:
                return value
        if self.api_key_file:
            return read_key_file(Path(self.api_key_file).expanduser())
        return None

    def to_toml_table(self) -> dict[str, str]:
        out = {}
        for key in ("base_url", "api_key_env", "api_key_file", "organization", "dialect"):
            value = getattr(self, key)
            if value is not None and not (key == "dialect" and value == "auto"):
                out[key] = value
        return out


def cache_namespace(profile: Profile) -> str:
    """A profile's namespace in the cache: its name, plus the URL for non-embedded ones (so a
    profile pointed at another server does not mix the two servers' jobs)."""
    return profile.name if profile.is_embedded else f"{profile.name}@{profile.base_url}"


def read_key_file(path: Path) -> str:
    """Read a key file, refusing one that others can read or that someone else owns."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"key file {path}: {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise ConfigError(
            f"key file {path} is readable by others (mode {stat.filemode(st.st_mode)}); "
            f"run: chmod 600 {path}"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ConfigError(f"key file {path} belongs to another user")
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ConfigError(f"key file {path} is empty")
    return key


def write_key_file(path: Path, key: str) -> Path:
    """Write ``key`` to ``path`` with mode 0600 from the first byte (temp file + rename)."""
    key = key.strip()
    if not key or "\n" in key:
        raise ConfigError("an API key is one non-empty line")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


BUILTIN_PROFILES = {LOCAL: Profile(name=LOCAL)}
#: Tables of the config file that belong to the terminal app (read by ftui.keymap).
APP_TABLES = ("keymap", "tui")


def _text_values(table: Any) -> dict[str, str]:
    """The text values of a TOML table (nothing when it is not a table)."""
    return {k: v for k, v in table.items() if isinstance(v, str)} if isinstance(table, dict) else {}


@dataclass
class Config:
    """The profiles of one config file (built-in ``local`` included)."""

    path: Path = field(default_factory=default_config_path)
    profiles: dict[str, Profile] = field(default_factory=dict)
    default_profile: str | None = None
    # Binding id -> keys; kept so that saving profiles never drops the user's remapped keys.
    keymap: dict[str, str] = field(default_factory=dict)
    #: The terminal app's own tables (``keymap``, ``tui``) as the file has them, unchecked: the
    #: app checks them (ftui.keymap) and saving writes their text values back.
    app_tables: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str | None = None) -> Config:
        path = Path(path) if path else default_config_path()
        profiles = dict(BUILTIN_PROFILES)
        default = None
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
            default = data.get("default_profile")
            for name, table in (data.get("profiles") or {}).items():
                if not isinstance(table, dict):
                    raise ConfigError(f"{path}: [profiles.{name}] must be a table")
                unknown = set(table) - {
                    "base_url",
                    "api_key_env",
                    "api_key_file",
                    "organization",
                    "dialect",
                }
                if unknown:
                    raise ConfigError(
                        f"{path}: profile {name!r} has unknown keys: {', '.join(sorted(unknown))}"
                        + (
                            " (keys go in an env var or a 0600 file)"
                            if "api_key" in unknown
                            else ""
                        )
                    )
                profiles[name] = Profile(name=name, **table)
            tables = {name: data[name] for name in APP_TABLES if name in data}
        else:
            tables = {}
        keymap = _text_values(tables.get("keymap"))
        return cls(
            path=path,
            profiles=profiles,
            default_profile=default,
            keymap=keymap,
            app_tables=tables,
        )

    def save(self) -> None:
        """Write the file atomically (temp + rename, mode 0600); built-ins are left out."""
        lines = []
        if self.default_profile:
            lines.append(f"default_profile = {_toml_str(self.default_profile)}")
        for name, profile in sorted(self.profiles.items()):
            if BUILTIN_PROFILES.get(name) == profile:
                continue
            lines.append("")
            lines.append(f"[profiles.{_toml_key(name)}]")
            for key, value in profile.to_toml_table().items():
                lines.append(f"{key} = {_toml_str(value)}")
        tables = {**self.app_tables, "keymap": self.keymap}
        for name in APP_TABLES:
            values = _text_values(tables.get(name))
            if values:
                lines += ["", f"[{name}]"]
                lines += [f"{_toml_key(k)} = {_toml_str(v)}" for k, v in sorted(values.items())]
        text = "\n".join(lines).lstrip("\n") + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(
                f"no profile named {name!r} in {self.path} (known: {known})"
            ) from None

    def set_profile(self, profile: Profile) -> None:
        self.profiles[profile.name] = profile

    def remove_profile(self, name: str) -> None:
        self.profiles.pop(name, None)
        if name in BUILTIN_PROFILES:
            self.profiles[name] = BUILTIN_PROFILES[name]
        if self.default_profile == name:
            self.default_profile = None

    def store_api_key(self, name: str, key: str, directory: Path | None = None) -> Profile:
        """Keep ``key`` in a 0600 file beside the config and point profile ``name`` at it."""
        directory = directory or self.path.parent / "keys"
        path = write_key_file(directory / f"{_safe_filename(name)}.key", key)
        profile = replace(self.get(name), api_key_file=str(path), api_key_env=None)
        self.set_profile(profile)
        return profile

    def resolve(self, name: str | None = None, environ: Mapping[str, str] | None = None) -> Profile:
        """The profile to use (see the module docstring for the order)."""
        env = os.environ if environ is None else environ
        name = name or env.get("FTUI_PROFILE") or None
        if name:
            return self.get(name)
        if env.get("OPENAI_BASE_URL"):
            return Profile(
                name=ENV_PROFILE,
                base_url=env["OPENAI_BASE_URL"].rstrip("/"),
                api_key_env="OPENAI_API_KEY",
                organization=env.get("OPENAI_ORGANIZATION") or None,
            )
        if self.default_profile:
            return self.get(self.default_profile)
        if env.get("OPENAI_API_KEY"):
            return Profile(
                name=ENV_PROFILE,
                base_url=OPENAI_BASE_URL,
                api_key_env="OPENAI_API_KEY",
                organization=env.get("OPENAI_ORGANIZATION") or None,
            )
        return self.get(LOCAL)


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_str(name)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "profile"
