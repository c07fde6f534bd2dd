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
from trayproxy.config import parse
from trayproxy.server import ProxyServer

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
