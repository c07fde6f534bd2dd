"""``trayproxy codex``: the ~/.codex/config.toml block, and its merge into a user's own file
(their comments and settings kept, a backup made, nothing written when nothing changes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomlkit

from tests.conftest import TOKEN, config_text
from trayproxy.clients import codex_config
from trayproxy.config.parse import parse

USER_FILE = """# my Codex settings
model = "o3"  # my default

[profiles.mine]
model = "o3"  # keep me

[model_providers.trayproxy]
name = "old name"
request_max_retries = 1  # my own setting
"""


def _trayproxy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "trayproxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_the_block_names_the_provider_and_a_profile_per_id(upstream) -> None:
    config = parse(config_text(upstream.url))
    block = tomlkit.parse(codex_config.render(config, "http://127.0.0.1:8000/v1")).unwrap()
    assert block["model_providers"]["trayproxy"] == {
        "name": "trayproxy",
        "base_url": "http://127.0.0.1:8000/v1",
        "wire_api": "responses",
    }
    kimi = block["profiles"]["nvidia/kimi-k2-thinking"]
    assert kimi == {
        "model": "nvidia/kimi-k2-thinking",
        "model_provider": "trayproxy",
        "model_context_window": 262144,  # its max_context_size
    }
    assert set(block["profiles"]) == set(config.models)
    with_token = parse(
        config_text(upstream.url).replace("[server]", '[server]\ntoken = "env:TP"', 1),
        environ={"TP": TOKEN},
    )
    provider = tomlkit.parse(codex_config.render(with_token, "http://x/v1")).unwrap()[
        "model_providers"
    ]
    assert provider["trayproxy"]["env_key"] == "TRAYPROXY_TOKEN"
    assert TOKEN not in codex_config.render(with_token, "http://x/v1")


def test_merge_keeps_the_user_s_file_and_makes_a_backup(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
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
    assert 'model = "o3"  # keep me' in text and "request_max_retries = 1  # my own setting" in text
    data = tomlkit.parse(text).unwrap()
    assert data["model_providers"]["trayproxy"]["wire_api"] == "responses"
    assert data["profiles"]["nvidia/kimi-k2-thinking"]["model_provider"] == "trayproxy"
    [backup] = list(codex_file.parent.glob("config.toml.bak-*"))
    assert backup.read_text() == USER_FILE
    again = _trayproxy("codex", "--config", str(config), "--merge", "--file", str(codex_file))
    assert "already up to date" in again.stdout
    assert len(list(codex_file.parent.glob("config.toml.bak-*"))) == 1
    path.write_text("not [ toml")
    broken = _trayproxy("codex", "--config", str(config), "--merge", "--file", str(path))
    assert broken.returncode == 1 and "not valid TOML" in broken.stderr
    assert path.read_text() == "not [ toml"
