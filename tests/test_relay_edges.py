"""Edge cases of the relay: encodings, odd upstream answers, hostile bodies, shutdown."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from tests.conftest import Proxy, config_text, http, post_json, settled
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(proxy_or_url, model: str, **extra) -> tuple[int, dict, bytes]:
    base = proxy_or_url if isinstance(proxy_or_url, str) else proxy_or_url.base_url
    return post_json(base + "/chat/completions", {"model": model, "messages": MESSAGES, **extra})


def last_record(proxy: Proxy) -> dict:
    settled(proxy.server.logbook)
    return json.loads(http("GET", proxy.root_url + "/_trayproxy/api/logs?limit=1")[2])["data"][0]


def test_gzip_from_upstream_reaches_the_client_decoded(proxy: Proxy) -> None:
    status, headers, body = chat(proxy, "fake/gzip")
    assert status == 200
    assert "Content-Encoding" not in headers
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert last_record(proxy)["completion_tokens"] == 6


def test_cors_grants_and_connection_named_headers_are_dropped(proxy: Proxy) -> None:
    status, headers, _ = chat(proxy, "fake/odd-headers")
    assert status == 200
    lowered = {k.lower() for k in headers}
    assert "access-control-allow-origin" not in lowered
    assert "x-hop" not in lowered


def test_a_stream_that_is_not_labelled_sse_is_still_streamed(proxy: Proxy) -> None:
    """text/plain and status 201 from upstream: relayed chunk by chunk, status 200."""
    req = urllib.request.Request(
        proxy.base_url + "/chat/completions",
        data=json.dumps(
            {"model": "fake/plain-stream", "messages": MESSAGES, "stream": True}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        first = resp.readline() + resp.readline() + resp.readline()
        assert b"keep-alive" in first or b"Hello" in first
        while b"Hello" not in first:
            first += resp.readline()
        assert not proxy.upstream.sent_last.is_set()  # we got it before the upstream finished
        proxy.upstream.gate.set()
        rest = resp.read()
    assert b"[DONE]" in rest


def test_lone_surrogates_in_a_body_are_relayed(proxy: Proxy) -> None:
    raw = (
        b'{"model": "nvidia/kimi-k2-thinking", '
        b'"messages": [{"role": "user", "content": "a\\ud83d"}]}'
    )
    status, _, _ = http(
        "POST", proxy.base_url + "/chat/completions", raw, {"Content-Type": "application/json"}
    )
    assert status == 200
    assert proxy.upstream.last.body["messages"][0]["content"] == "a\ud83d"


@pytest.mark.parametrize("value", [b"1e400", b"NaN", b"-Infinity"])
def test_non_finite_numbers_are_refused(proxy: Proxy, value: bytes) -> None:
    raw = b'{"model": "nvidia/kimi-k2-thinking", "temperature": ' + value + b"}"
    status, _, body = http(
        "POST", proxy.base_url + "/chat/completions", raw, {"Content-Type": "application/json"}
    )
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_json"
    assert proxy.upstream.requests == []


def test_a_huge_model_id_is_cut_in_the_record(proxy: Proxy) -> None:
    status, _, body = chat(proxy, "x\n" * 5000)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_model"
    record = last_record(proxy)
    assert len(record["client_model"]) == 256


def test_non_stream_time_to_first_byte_is_the_header_time(proxy: Proxy) -> None:
    status, _, _ = chat(proxy, "nvidia/kimi-k2-thinking")
    assert status == 200
    record = last_record(proxy)
    assert record["ttfb_ms"] <= record["duration_ms"]


def test_stream_time_to_first_byte_waits_for_content(proxy: Proxy) -> None:
    """Headers at once, first token 0.5 s later: the record shows the 0.5 s."""
    status, _, body = chat(proxy, "fake/late", stream=True)
    assert status == 200 and b"[DONE]" in body
    record = last_record(proxy)
    assert record["ttfb_ms"] >= 450
    assert record["duration_ms"] >= record["ttfb_ms"]


def test_stall_mid_stream_ends_with_a_timeout_event(proxy: Proxy) -> None:
    proxy.upstream.slow_seconds = 3
    req = urllib.request.Request(
        proxy.base_url + "/chat/completions",
        data=json.dumps(
            {"model": "impatient/stall", "messages": MESSAGES, "stream": True}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "upstream_timeout"
    assert "[DONE]" not in events


def test_missing_env_header_value_is_a_clear_error(upstream) -> None:
    extra = (
        '\n[providers.hdr]\nbase_url = "{u}/v1"\nheaders = {{ "api-key" = "env:TP_UNSET_HDR" }}\n'
    )
    config = parse(config_text(upstream.url, extra=extra.format(u=upstream.url)))
    server = ProxyServer(config)
    server.start()
    try:
        status, _, body = chat(server.base_url, "hdr/some-model")
    finally:
        server.stop(grace=1)
    assert status == 502
    err = json.loads(body)["error"]
    assert err["code"] == "provider_key_missing" and "TP_UNSET_HDR" in err["message"]
    assert upstream.requests == []


def test_shutdown_ends_open_streams_with_an_error_event(upstream) -> None:
    server = ProxyServer(parse(config_text(upstream.url)))
    server.start()
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps({"model": "fake/gated", "messages": MESSAGES, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    resp = urllib.request.urlopen(req, timeout=30)
    got = b""
    while b"Hello" not in got:
        got += resp.readline()
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 0.5})
    started = time.monotonic()
    stopper.start()
    rest = resp.read().decode()
    stopper.join(10)
    assert time.monotonic() - started < 5
    events = [line[6:] for line in rest.split("\n") if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "proxy_shutting_down"
    [record] = server.logbook.recent(1)
    assert record.error == "trayproxy stopped while streaming"
