"""``trayproxy claude-code``: the environment it prints points the anthropic SDK (as Claude
Code reads the same variables) at a running trayproxy, token and models included."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from tests.conftest import TOKEN, config_text, free_port
from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer


def _exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0]
    return env


def _claude_code(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trayproxy", "claude-code", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_printed_environment_reaches_trayproxy_with_the_token(
    tmp_path: Path, upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    text = config_text(upstream.url, port=port).replace(
        "[server]", '[server]\ntoken = "env:TP_TOKEN"', 1
    )
    text += '\n[claude_code]\nmodel = "nvidia/kimi-k2-thinking"\nsmall_model = "fake/embed"\n'
    config = tmp_path / "config.toml"
    config.write_text(text)
    monkeypatch.setenv("TP_TOKEN", TOKEN)
    printed = _claude_code(config)
    assert printed.returncode == 0, printed.stderr
    env = _exports(printed.stdout)
    assert env == {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_AUTH_TOKEN": TOKEN,
        "ANTHROPIC_MODEL": "nvidia/kimi-k2-thinking",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "nvidia/kimi-k2-thinking",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "nvidia/kimi-k2-thinking",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "fake/embed",
        "ANTHROPIC_SMALL_FAST_MODEL": "fake/embed",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    settings = json.loads(_claude_code(config, "--settings").stdout)
    assert settings == {"env": env}

    server = ProxyServer(parse(text, environ={"TP_TOKEN": TOKEN}))
    server.start()
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = anthropic.Anthropic(max_retries=0)  # reads ANTHROPIC_BASE_URL and the token
        answer = client.messages.create(
            model=env["ANTHROPIC_MODEL"],
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        )
        assert answer.content[0].text == "Hello from the fake upstream."
        monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "not-the-token")
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(max_retries=0).messages.create(
                model=env["ANTHROPIC_MODEL"],
                max_tokens=50,
                messages=[{"role": "user", "content": "hi"}],
            )
    finally:
        server.stop(grace=1)


def test_a_claude_code_model_that_is_not_mapped_is_a_config_error(upstream) -> None:
    text = config_text(upstream.url) + '\n[claude_code]\nmodel = "nvidia/kimi-k3"\n'
    with pytest.raises(ConfigError) as err:
        parse(text, file="c.toml")
    assert "claude_code.model" in str(err.value)
    assert "names 'nvidia/kimi-k3', which is not a configured model id" in str(err.value)
