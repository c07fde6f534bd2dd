"""`trayproxy continue-config` output, validated by Continue's own parser
(@continuedev/config-yaml from npm), and model metadata in /v1/models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import config_text, http
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

JS_DIR = Path(__file__).parent / "js"
EXTRA = """
[models."meta/full"]
provider = "fake"
model = "m"
max_context_size = 262144
max_output_tokens = 8192
capabilities = ["tool_use", "vision", "reasoning"]
"""


def validate_with_continue(text: str) -> dict:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@continuedev" / "config-yaml").is_dir():
        pytest.fail("Continue's config parser is not installed: run `npm ci --prefix tests/js`")
    result = subprocess.run(
        [node, "validate_config.mjs"],
        input=text,
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_generated_config_is_valid_for_continue(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, extra=EXTRA, port=8123))
    out = subprocess.run(
        [sys.executable, "-m", "trayproxy", "continue-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    parsed = validate_with_continue(out.stdout)
    assert parsed["errors"] == []
    by_model = {m["model"]: m for m in parsed["models"]}
    assert set(by_model) == {
        "nvidia/kimi-k2-thinking",
        "fake/gated",
        "fake/embed",
        "nokey/model",
        "down/model",
        "meta/full",
    }
    full = by_model["meta/full"]
    assert full["provider"] == "openai"
    assert full["apiBase"] == "http://127.0.0.1:8123/v1"
    assert full["roles"] == ["chat", "edit", "apply"]
    assert full["capabilities"] == ["tool_use", "image_input"]
    assert full["defaultCompletionOptions"] == {"contextLength": 262144, "maxTokens": 8192}
    assert by_model["nvidia/kimi-k2-thinking"]["defaultCompletionOptions"] == {
        "contextLength": 262144
    }


def test_token_is_referenced_not_printed(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    token = "tp-secret-token-1234567890"
    path.write_text(config_text(upstream.url).replace("[server]", f'[server]\ntoken = "{token}"'))
    out = subprocess.run(
        [sys.executable, "-m", "trayproxy", "continue-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert token not in out
    assert "${{ secrets.TRAYPROXY_TOKEN }}" in out


def test_models_list_carries_metadata(upstream) -> None:
    server = ProxyServer(parse(config_text(upstream.url, extra=EXTRA)))
    server.start()
    try:
        data = json.loads(http("GET", server.base_url + "/models")[2])["data"]
        entry = next(m for m in data if m["id"] == "meta/full")
        assert entry["context_length"] == 262144
        assert entry["max_output_tokens"] == 8192
        assert entry["capabilities"] == ["tool_use", "vision", "reasoning"]
        plain = next(m for m in data if m["id"] == "fake/gated")
        assert "capabilities" not in plain and "context_length" not in plain
    finally:
        server.stop(grace=1)


USER_CONFIG = """\
# my Continue setup
name: My assistant
version: 1.0.0
schema: v1

models:
  # the one I pay for
  - name: Claude
    provider: anthropic
    model: claude-sonnet-4-5
    apiKey: ${{ secrets.ANTHROPIC_KEY }}
    roles: [chat]
  - name: "fake/gated (trayproxy)"
    provider: openai
    model: fake/gated
    apiBase: http://127.0.0.1:9999/v1

context:
  - provider: code
"""


def merge(path: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trayproxy",
            "continue-config",
            "--config",
            str(path),
            "--merge",
            "--file",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_merge_keeps_the_users_entries_and_backs_up(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, extra=EXTRA, port=8123))
    target = tmp_path / ".continue" / "config.yaml"
    target.parent.mkdir()
    target.write_text(USER_CONFIG)

    out = merge(path, target)
    assert out.returncode == 0, out.stderr
    backups = list(target.parent.glob("config.yaml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == USER_CONFIG
    assert "Left alone (your own entries have these names): fake/gated (trayproxy)" in out.stdout
    merged = target.read_text()
    # without trayproxy's marked block, the file is exactly the user's
    lines = merged.splitlines()
    begin = next(i for i, line in enumerate(lines) if "# >>> trayproxy models" in line)
    end = next(i for i, line in enumerate(lines) if "# <<< trayproxy models" in line)
    assert lines[:begin] + lines[end + 1 :] == USER_CONFIG.splitlines()
    parsed = validate_with_continue(merged)
    assert parsed["errors"] == []
    names = [m["name"] for m in parsed["models"]]
    assert names.count("fake/gated (trayproxy)") == 1  # the user's entry, not a second one
    assert "Claude" in names and "meta/full (trayproxy)" in names
    assert len(names) == 1 + 6  # the user's Claude + trayproxy's six ids
    assert "context:" in merged

    # a second merge replaces the block instead of adding to it
    path.write_text(config_text(upstream.url, port=8123))  # meta/full is gone now
    again = merge(path, target)
    assert again.returncode == 0, again.stderr
    parsed = validate_with_continue(target.read_text())
    names = [m["name"] for m in parsed["models"]]
    assert "meta/full (trayproxy)" not in names and len(names) == 1 + 5
    assert len(list(target.parent.glob("config.yaml.bak-*"))) == 2


def test_merge_creates_a_missing_file_but_never_shadows_config_json(
    tmp_path: Path, upstream
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, port=8123))
    target = tmp_path / "fresh" / "config.yaml"
    out = merge(path, target)
    assert out.returncode == 0, out.stderr
    assert validate_with_continue(target.read_text())["errors"] == []

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text('{"models": []}')
    refused = merge(path, legacy / "config.yaml")
    assert refused.returncode == 1
    assert "config.json" in refused.stderr
    assert not (legacy / "config.yaml").exists()
