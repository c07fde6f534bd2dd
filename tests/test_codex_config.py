"""``trayproxy codex``: the provider block for ~/.codex/config.toml and a profile file per
mapped id (``codex --profile <name>``, as Codex 0.134 and later read profiles), and their merge
into a user's own files (comments and settings kept, a backup made, nothing written when
nothing changes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomlkit

from tests.conftest import TOKEN, config_text
from trayproxy.clients import codex_config
from trayproxy.config.parse import parse

USER_FILE = """# my Codex settings
model = "o3"  # my default

[model_providers.trayproxy]
name = "old name"
request_max_retries = 1  # my own setting
"""


def _trayproxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trayproxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_the_printed_setup_names_the_provider_and_a_profile_file_per_id(upstream) -> None:
    config = parse(config_text(upstream.url))
    printed = codex_config.render(config, "http://127.0.0.1:8000/v1")
    provider_part, *profile_parts = printed.split("\n# ~/.codex/")
    assert tomlkit.parse(provider_part).unwrap()["model_providers"]["trayproxy"] == {
        "name": "trayproxy",
        "base_url": "http://127.0.0.1:8000/v1",
        "wire_api": "responses",
    }
    names = [part.split(".config.toml", 1)[0] for part in profile_parts]
    assert "nvidia-kimi-k2-thinking" in names and len(names) == len(config.models)
    kimi = next(p for p in profile_parts if p.startswith("nvidia-kimi-k2-thinking."))
    assert tomlkit.parse(kimi.split("\n", 1)[1]).unwrap() == {
        "model": "nvidia/kimi-k2-thinking",
        "model_provider": "trayproxy",
        "model_context_window": 262144,  # its max_context_size
    }
    assert codex_config.profile_name("a/b.c:d") == "a-b-c-d"
    with_token = parse(
        config_text(upstream.url).replace("[server]", '[server]\ntoken = "env:TP"', 1),
        environ={"TP": TOKEN},
    )
    shown = codex_config.render(with_token, "http://x/v1")
    assert 'env_key = "TRAYPROXY_TOKEN"' in shown and TOKEN not in shown


def test_merge_keeps_the_user_s_file_and_makes_a_backup(tmp_path: Path, upstream) -> None:
    config = tmp_path / "trayproxy.toml"
    config.write_text(config_text(upstream.url))
    codex_file = tmp_path / "codex" / "config.toml"
    codex_file.parent.mkdir()
    codex_file.write_text(USER_FILE)
    merged = _trayproxy("codex", "--config", str(config), "--merge", "--file", str(codex_file))
    assert merged.returncode == 0, merged.stderr
    assert "5 added, 1 updated" in merged.stdout and "saved as" in merged.stdout
    text = codex_file.read_text()
    assert text.startswith('# my Codex settings\nmodel = "o3"  # my default\n')
    assert "request_max_retries = 1  # my own setting" in text
    provider = tomlkit.parse(text).unwrap()["model_providers"]["trayproxy"]
    assert provider["wire_api"] == "responses" and provider["name"] == "trayproxy"
    assert "[profiles" not in text  # Codex refuses those tables with --profile
    profile = codex_file.with_name("nvidia-kimi-k2-thinking.config.toml").read_text()
    assert tomlkit.parse(profile).unwrap()["model_provider"] == "trayproxy"
    [backup] = list(codex_file.parent.glob("config.toml.bak-*"))
    assert backup.read_text() == USER_FILE
    again = _trayproxy("codex", "--config", str(config), "--merge", "--file", str(codex_file))
    assert "up to date" in again.stdout
    assert len(list(codex_file.parent.glob("*.bak-*"))) == 1
    broken = tmp_path / "broken" / "config.toml"
    broken.parent.mkdir()
    broken.write_text("not [ toml")
    out = _trayproxy("codex", "--config", str(config), "--merge", "--file", str(broken))
    assert out.returncode == 1 and "not valid TOML" in out.stderr
    assert broken.read_text() == "not [ toml"


def test_merge_drops_an_env_key_once_the_token_is_gone(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[model_providers.trayproxy]\nenv_key = "TRAYPROXY_TOKEN"\n')
    result = codex_config.merge_into(path, parse(config_text(upstream.url)), "http://x/v1")
    assert "env_key" not in tomlkit.parse(path.read_text()).unwrap()["model_providers"]["trayproxy"]
    assert "model_providers.trayproxy" in result.updated
