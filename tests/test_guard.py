"""Web pages cannot use trayproxy: Host, Origin and Content-Type checks."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Proxy, config_text, http
from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.gateway.guard import host_allowed, origin_allowed, split_host
from trayproxy.server.proxy_server import ProxyServer

CHAT = json.dumps({"model": "nvidia/kimi-k2-thinking", "messages": []}).encode()
JSON = {"Content-Type": "application/json"}


def post(proxy: Proxy, headers: dict[str, str], body: bytes = CHAT):
    return http("POST", proxy.base_url + "/chat/completions", body, headers)


def test_split_host() -> None:
    assert split_host("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("LOCALHOST") == ("localhost", None)
    assert split_host("evil.com:80:1") is None
    assert split_host("[::1") is None


def test_host_and_origin_rules() -> None:
    names = {"127.0.0.1", "localhost", "::1"}
    assert host_allowed("localhost:8000", 8000, names)
    assert not host_allowed("localhost:8001", 8000, names)
    assert not host_allowed("attacker.example:8000", 8000, names)
    assert not host_allowed(None, 8000, names)
    assert origin_allowed("http://127.0.0.1:8000", 8000, names, ())
    assert not origin_allowed("null", 8000, names, ())
    assert not origin_allowed("https://127.0.0.1:8000", 8000, names, ())
    assert origin_allowed("http://localhost:3000", 8000, names, ("http://localhost:3000",))


def test_plain_text_post_from_a_page_is_refused(proxy: Proxy) -> None:
    status, _, body = post(proxy, {"Content-Type": "text/plain"})
    assert status == 415
    assert json.loads(body)["error"]["code"] == "unsupported_media_type"
    assert proxy.upstream.requests == []


def test_foreign_origin_is_refused(proxy: Proxy) -> None:
    for origin in ("https://evil.example", "null", "http://127.0.0.1:1"):
        status, headers, body = post(proxy, {**JSON, "Origin": origin})
        assert status == 403, origin
        assert json.loads(body)["error"]["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in headers
    assert proxy.upstream.requests == []


def test_dns_rebinding_host_is_refused_everywhere(proxy: Proxy) -> None:
    port = proxy.server.port
    for path in ("/v1/models", "/_trayproxy/api/logs", "/_trayproxy/"):
        status, _, body = http("GET", proxy.root_url + path, None, {"Host": f"evil.example:{port}"})
        assert status == 403
        assert json.loads(body)["error"]["code"] == "host_not_allowed"
    status, _, _ = post(proxy, {**JSON, "Host": f"rebound.example:{port}"})
    assert status == 403
    assert proxy.upstream.requests == []


def test_loopback_names_work(proxy: Proxy) -> None:
    port = proxy.server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert http("GET", proxy.base_url + "/models", None, {"Host": host})[0] == 200
    status, _, _ = post(proxy, {**JSON, "Origin": f"http://localhost:{port}"})
    assert status == 200  # the page itself


def test_preflight_only_for_allowed_origins(upstream) -> None:
    text = config_text(upstream.url).replace(
        "[server]", '[server]\nallowed_origins = ["http://localhost:3000"]'
    )
    server = ProxyServer(parse(text))
    server.start()
    try:
        url = server.base_url + "/chat/completions"
        ok = http(
            "OPTIONS",
            url,
            None,
            {
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert ok[0] == 204
        assert ok[1]["Access-Control-Allow-Origin"] == "http://localhost:3000"
        bad = http(
            "OPTIONS",
            url,
            None,
            {
                "Origin": "http://localhost:4000",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert bad[0] == 403 and "Access-Control-Allow-Origin" not in bad[1]
        status, headers, _ = http("POST", url, CHAT, {**JSON, "Origin": "http://localhost:3000"})
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    finally:
        server.stop(grace=1)


def test_allowed_origins_are_validated() -> None:
    with pytest.raises(ConfigError, match="must be an origin like"):
        parse('[server]\nallowed_origins = ["http://localhost:3000/app"]\n')
    with pytest.raises(ConfigError, match="list of non-empty strings"):
        parse("[server]\nallowed_origins = 5\n")
