"""Profiles and key sources (ftui/config.py); embedded server start-up (ftui/local_server.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import threading
from pathlib import Path

import httpx
import pytest

from ftui.config import (
    ENV_PROFILE,
    LOCAL,
    OPENAI_BASE_URL,
    Config,
    ConfigError,
    Profile,
)
from ftui.local_server import ensure_local_server

SECRET = "sk-test-SECRET-0123456789abcdef"


def test_round_trip_keeps_profiles_and_never_writes_keys(tmp_path):
    path = tmp_path / "config.toml"
    config = Config.load(path)
    assert set(config.profiles) == {LOCAL}  # built in, with no file at all
    config.set_profile(
        Profile(
            name="work box",  # needs quoting as a TOML key
            base_url="https://example.test/v1",
            api_key_env="WORK_KEY",
            organization='org-"quoted"',
            dialect="legacy",
        )
    )
    config.default_profile = "work box"
    config.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Config.load(path)
    assert again.profiles["work box"] == config.profiles["work box"]
    assert again.default_profile == "work box"
    assert again.profiles[LOCAL].is_embedded
    assert LOCAL not in path.read_text()  # built-ins are not written out


def test_a_key_in_the_config_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[profiles.x]\nbase_url = "https://a.test/v1"\napi_key = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="env var or a 0600 file") as info:
        Config.load(path)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[profiles.x\n", "not valid TOML"),
        ('[profiles.x]\ndialect = "modern"\n', "dialect must be one of"),
        ('[profiles.x]\nbase_url = "ftp://a"\n', "must start with http"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        Config.load(path)


def test_profile_resolution_order(tmp_path):
    config = Config.load(tmp_path / "none.toml")
    assert config.resolve(environ={}).name == LOCAL
    only_key = config.resolve(environ={"OPENAI_API_KEY": SECRET})
    assert (only_key.name, only_key.base_url) == (ENV_PROFILE, OPENAI_BASE_URL)
    assert only_key.api_key({"OPENAI_API_KEY": SECRET}) == SECRET

    config.set_profile(Profile(name="mine", base_url="https://mine.test/v1"))
    config.default_profile = "mine"
    assert config.resolve(environ={"OPENAI_API_KEY": SECRET}).name == "mine"
    # ... and a named profile does not pick up OPENAI_API_KEY: keys go only where profiles say.
    assert (
        config.resolve(environ={"OPENAI_API_KEY": SECRET}).api_key({"OPENAI_API_KEY": SECRET})
        is None
    )
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1/", "OPENAI_API_KEY": SECRET}
    via_url = config.resolve(environ=env)
    assert (via_url.name, via_url.base_url) == (ENV_PROFILE, "http://127.0.0.1:9/v1")
    assert config.resolve("local", environ=env).name == LOCAL  # a named profile wins
    assert config.resolve(environ={**env, "FTUI_PROFILE": "mine"}).name == "mine"
    with pytest.raises(ConfigError, match="no profile named 'nope'"):
        config.resolve("nope", environ={})


def test_key_from_env_var_and_from_0600_file(tmp_path):
    profile = Profile(name="p", base_url="https://a.test/v1", api_key_env="MY_KEY")
    assert profile.api_key({"MY_KEY": f"  {SECRET}\n"}) == SECRET
    assert profile.api_key({}) is None

    config = Config.load(tmp_path / "config.toml")
    config.set_profile(profile)
    stored = config.store_api_key("p", SECRET)
    key_file = Path(stored.api_key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stored.api_key({}) == SECRET
    config.save()
    text = (tmp_path / "config.toml").read_text()
    assert SECRET not in text and str(key_file) in text
    assert Config.load(tmp_path / "config.toml").get("p").api_key({}) == SECRET

    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        stored.api_key({})
    assert SECRET not in str(info.value)


def test_key_never_in_reprs():
    profile = Profile(name="p", base_url="https://a.test/v1", api_key_env="MY_KEY")
    assert SECRET not in repr(profile)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # subprocess' clean-up may have reaped it
        os.waitpid(pid, 0)


def test_embedded_server_is_started_once_and_shared(tmp_path):
    """Two callers at once get one server; a later call finds it running; a dead one is replaced."""
    urls: list[str] = []
    threads = [
        threading.Thread(target=lambda: urls.append(ensure_local_server(tmp_path)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = json.loads((tmp_path / "local-server.json").read_text())
    try:
        assert urls[0] == urls[1] == f"http://127.0.0.1:{state['port']}/v1"
        assert httpx.get(f"{urls[0]}/models", trust_env=False).status_code == 200
        assert ensure_local_server(tmp_path) == urls[0]
        assert (tmp_path / "server").is_dir()
    finally:
        _kill(state["pid"])
    fresh = ensure_local_server(tmp_path)
    new_state = json.loads((tmp_path / "local-server.json").read_text())
    try:
        assert new_state["pid"] != state["pid"]
        assert httpx.get(f"{fresh}/models", trust_env=False).status_code == 200
    finally:
        _kill(new_state["pid"])


def test_embedded_server_that_cannot_start_says_why(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named uvicorn' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(
        ConfigError, match=r"(?s)exited with status 3.*ftui\[local\].*uvicorn"
    ) as info:
        ensure_local_server(tmp_path, python=str(fake))
    assert "server.log" in str(info.value)


def test_saving_profiles_keeps_the_keymap(tmp_path):
    from ftui.config import Config, Profile

    path = tmp_path / "config.toml"
    path.write_text('[keymap]\n"jobs.refresh" = "ctrl+r"\nquit = "ctrl+q"\n')
    config = Config.load(path)
    config.set_profile(Profile(name="work", base_url="http://127.0.0.1:9/v1"))
    config.save()
    again = Config.load(path)
    assert again.keymap == {"jobs.refresh": "ctrl+r", "quit": "ctrl+q"}
    assert again.get("work").base_url == "http://127.0.0.1:9/v1"
