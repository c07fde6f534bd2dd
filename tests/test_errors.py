"""What a client sees when something is wrong: OpenAI-shaped JSON with the right status."""

from __future__ import annotations

import json
import socket
import time

import openai
import pytest

from tests.conftest import CLIENT_KEY, Proxy, config_text, http, post_json, settled
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import PortInUseError, ProxyServer

CHAT = {"model": "nvidia/kimi-k2-thinking", "messages": [{"role": "user", "content": "hi"}]}


def error_of(body: bytes) -> dict:
    data = json.loads(body)
    assert set(data) == {"error"}
    assert set(data["error"]) == {"message", "type", "param", "code"}
    return data["error"]


def last_record(proxy: Proxy) -> dict:
    settled(proxy.server.logbook)
    _, _, body = http("GET", proxy.root_url + "/_trayproxy/api/logs?limit=1")
    return json.loads(body)["data"][0]


def test_unknown_model_is_404_with_suggestions(proxy: Proxy) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="kimi-k2-thinking", messages=CHAT["messages"])
    err = info.value.body
    assert isinstance(err, dict)
    assert err["code"] == "model_not_found"
    assert "nvidia/kimi-k2-thinking" in err["message"]
    assert proxy.upstream.requests == []
    record = last_record(proxy)
    assert (record["status"], record["client_model"]) == (404, "kimi-k2-thinking")


def test_malformed_json_is_400(proxy: Proxy) -> None:
    status, _, body = http(
        "POST",
        proxy.base_url + "/chat/completions",
        b'{"model": ',
        {"Content-Type": "application/json"},
    )
    assert status == 400
    err = error_of(body)
    assert err["code"] == "invalid_json" and "not valid JSON" in err["message"]


@pytest.mark.parametrize("body", [{"messages": []}, {"model": ""}, {"model": 5}])
def test_missing_model_is_400(proxy: Proxy, body: dict) -> None:
    status, _, raw = post_json(proxy.base_url + "/chat/completions", body)
    assert status == 400
    err = error_of(raw)
    assert (err["param"], err["code"]) == ("model", "missing_model")


def test_body_must_be_an_object(proxy: Proxy) -> None:
    status, _, raw = post_json(proxy.base_url + "/chat/completions", ["model"])
    assert status == 400
    assert error_of(raw)["code"] == "invalid_json"


def test_upstream_down_is_502(proxy: Proxy) -> None:
    status, headers, raw = post_json(
        proxy.base_url + "/chat/completions", {**CHAT, "model": "down/model"}
    )
    assert status == 502
    err = error_of(raw)
    assert err["code"] == "upstream_unreachable"
    assert "down" in err["message"] and "127.0.0.1:9" in err["message"]
    assert headers.get("x-should-retry") == "false"
    assert last_record(proxy)["status"] == 502


@pytest.mark.parametrize("status", [400, 429, 500])
def test_upstream_errors_pass_through(proxy: Proxy, status: int) -> None:
    got, headers, raw = post_json(
        proxy.base_url + "/chat/completions", {**CHAT, "model": f"fake/error-{status}"}
    )
    assert got == status
    err = error_of(raw)
    assert err["message"] == f"fake upstream says {status}"
    assert err["code"] == f"fake_{status}"
    if status == 429:
        assert headers.get("Retry-After") == "7"
    record = last_record(proxy)
    assert record["status"] == status
    assert record["error"] == f"fake upstream says {status}"


def test_upstream_4xx_reaches_the_sdk_as_its_error(proxy: Proxy) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="fake upstream says 400"):
        client.chat.completions.create(model="fake/error-400", messages=CHAT["messages"])


def test_upstream_redirect_is_502_not_followed(proxy: Proxy) -> None:
    status, _, raw = post_json(
        proxy.base_url + "/chat/completions", {**CHAT, "model": "fake/redirect"}
    )
    assert status == 502
    err = error_of(raw)
    assert err["code"] == "upstream_redirect"
    assert len(proxy.upstream.requests) == 1


def test_upstream_timeout_is_504(proxy: Proxy) -> None:
    proxy.upstream.slow_seconds = 3
    status, _, raw = post_json(
        proxy.base_url + "/chat/completions", {**CHAT, "model": "impatient/slow"}
    )
    assert status == 504
    assert error_of(raw)["code"] == "upstream_timeout"


def test_missing_provider_key_is_clear(proxy: Proxy) -> None:
    status, _, raw = post_json(
        proxy.base_url + "/chat/completions", {**CHAT, "model": "nokey/model"}
    )
    assert status == 502
    err = error_of(raw)
    assert err["code"] == "provider_key_missing"
    assert err["message"].startswith(
        "trayproxy has no API key for provider 'nokey': the environment variable "
        "TRAYPROXY_TEST_UNSET_KEY is not set where trayproxy was started"
    )
    assert "trayproxy key set nokey" in err["message"]
    assert proxy.upstream.requests == []


def test_four_mib_body_goes_through(proxy: Proxy) -> None:
    big = "x" * (4 * 1024 * 1024)
    status, _, _ = post_json(  # a mapping with no max_context_size: no estimate stops it
        proxy.base_url + "/chat/completions",
        {**CHAT, "model": "fake/gated", "messages": [{"role": "user", "content": big}]},
    )
    assert status == 200
    assert proxy.upstream.last.body["messages"][0]["content"] == big


def test_body_over_the_limit_is_413(upstream) -> None:
    config = parse(config_text(upstream.url)).with_server(max_body_mb=1)
    server = ProxyServer(config)
    server.start()
    try:
        payload = {**CHAT, "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
        status, _, raw = post_json(server.base_url + "/chat/completions", payload)
        assert status == 413
        err = error_of(raw)
        assert err["code"] == "request_too_large" and "max_body_mb" in err["message"]
        assert upstream.requests == []
        # the server still answers afterwards
        assert http("GET", server.base_url + "/models")[0] == 200
    finally:
        server.stop(grace=1)


def test_unknown_path_is_404_json(proxy: Proxy) -> None:
    for path in ("/v1/nope", "/nothing/here", "/v2/chat/completions"):
        status, headers, raw = http("GET", proxy.root_url + path)
        assert status == 404
        assert headers["Content-Type"].startswith("application/json")
        assert error_of(raw)["code"] == "not_found"


def test_wrong_method_is_405_json(proxy: Proxy) -> None:
    status, headers, raw = http("GET", proxy.base_url + "/chat/completions")
    assert status == 405
    assert "POST" in headers["Allow"]
    assert error_of(raw)["code"] == "method_not_allowed"
    status, _, raw = http("DELETE", proxy.base_url + "/models")
    assert status == 405


def test_upstream_dying_mid_stream_ends_with_an_error_event(proxy: Proxy) -> None:
    import urllib.request

    req = urllib.request.Request(
        proxy.base_url + "/chat/completions",
        data=json.dumps({**CHAT, "model": "fake/die-midstream", "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["code"] == "upstream_error"
    assert '"Hello"' in text  # what arrived before the failure was delivered
    record = last_record(proxy)
    assert record["status"] == 200 and "broke off" in record["error"]


def test_client_disconnect_cancels_the_upstream_request(proxy: Proxy) -> None:
    body = json.dumps({**CHAT, "model": "fake/gated", "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", proxy.server.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:"
            + str(proxy.server.port).encode()
            + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        received = b""
        while b"Hello" not in received:  # wait for the first chunk
            data = sock.recv(65536)
            assert data, "connection closed before the first chunk"
            assert not received.startswith(b"HTTP/1.1 4"), received
            received += data
    # the client is gone: trayproxy must drop the upstream request, not wait for the gate
    assert proxy.upstream.disconnected.wait(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        record = last_record(proxy) if proxy.server.logbook.recent() else None
        if record:
            break
        time.sleep(0.05)
    assert record is not None and record["status"] == 499
    assert record["error"] == "client disconnected"


def test_port_in_use_is_a_clear_error(upstream) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = ProxyServer(parse(config_text(upstream.url, port=port)))
        with pytest.raises(PortInUseError, match=f"Port {port} .* used by another program"):
            server.start()
