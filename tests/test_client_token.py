"""A client token: required when set, refused when short or unset, needed off loopback, and
handed to the page by the tray without reaching a log."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from tests.conftest import (
    TOKEN,
    chat,
    config_text,
    http,
)
from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.config.paths import app_paths
from trayproxy.desktop.app import App
from trayproxy.server.proxy_server import ProxyServer, ServerError


def test_client_token_is_required_when_configured(serve, upstream) -> None:
    server = serve(token='"env:TP_TOKEN"')
    status, _, body = chat(server, "nvidia/kimi-k2-thinking")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert (
        chat(server, "nvidia/kimi-k2-thinking", {"Authorization": "Bearer wrong-token"})[0] == 401
    )
    assert chat(server, "nvidia/kimi-k2-thinking", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert chat(server, "nvidia/kimi-k2-thinking", {"x-api-key": TOKEN})[0] == 200
    # the token is the client's credential: it never travels upstream
    assert TOKEN not in json.dumps([r.headers for r in upstream.requests])
    # the openai SDK sends it as its api_key
    client = openai.OpenAI(base_url=server.base_url, api_key=TOKEN, max_retries=0)
    assert client.models.list().data
    # the page shell loads; its data needs the token
    assert http("GET", server.root_url + "/_trayproxy/")[0] == 200
    assert http("GET", server.root_url + "/_trayproxy/api/logs")[0] == 401


def test_non_loopback_without_token_refuses_to_start(upstream) -> None:
    config = parse(config_text(upstream.url)).with_server(host="0.0.0.0")
    with pytest.raises(ServerError, match="other machines use your provider keys"):
        ProxyServer(config).start()


def test_short_or_unset_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 16 characters"):
        parse('[server]\ntoken = "short"\n')
    with pytest.raises(ConfigError, match="env:NOPE_UNSET, which is not set"):
        parse('[server]\ntoken = "env:NOPE_UNSET"\n', environ={})


def test_tray_opens_the_page_with_the_token_in_the_fragment(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(upstream.url).replace(
            "[server]", '[server]\ntoken = "tp-literal-token-1234567890"', 1
        )
    )
    app = App(path, app_paths())
    app.start()
    try:
        assert app.page_url().endswith("/_trayproxy/#token=tp-literal-token-1234567890")
    finally:
        app.shutdown(grace=1)
