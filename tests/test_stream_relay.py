"""Relaying a stream: events split across writes, keep-alive pings that are not progress, a
client that leaves, and a slow client that holds the provider back."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.conftest import (
    MESSAGES,
    record,
)


def test_events_split_across_writes_arrive_whole_and_are_counted(serve) -> None:
    server = serve()
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    pieces, usage = [], None
    for chunk in client.chat.completions.create(
        model="fake/split",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == "Hello from the fake upstream."
    assert usage is not None and usage.completion_tokens == 6
    rec = record(server)
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (11, 6)


def test_keep_alive_pings_are_not_progress(serve, upstream) -> None:
    upstream.slow_seconds = 4
    server = serve()
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(
            {"model": "impatient/pings", "messages": MESSAGES, "stream": True}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    # nothing but the provider's comments reached the client: the failure is still an HTTP
    # answer (a fallback could have answered instead)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=30)
    assert time.monotonic() - started < 3.5  # idle_timeout = 1 s, pings every 0.1 s
    assert caught.value.code == 504
    error = json.loads(caught.value.read())["error"]
    assert error["code"] == "upstream_timeout"
    assert "idle_timeout" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_while_waiting_closes_the_upstream_request(
    serve, upstream, stream
) -> None:
    upstream.slow_seconds = 10
    server = serve()
    body = json.dumps({"model": "fake/slow", "messages": MESSAGES, "stream": stream}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 5
        while not upstream.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.requests
    left = time.monotonic()
    assert upstream.disconnected.wait(5)
    assert time.monotonic() - left < 1.0  # within a second
    deadline = time.monotonic() + 5
    while not server.logbook.recent() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert record(server)["status"] == 499


def test_a_slow_client_pushes_back_on_the_upstream(serve, upstream) -> None:
    """Backpressure: while the client does not read, the upstream cannot send everything,
    and trayproxy's memory does not take up the difference.

    The kernel buffers what trayproxy does not: here up to 32 MiB on a receiving socket
    (``tcp_rmem``) and 4 MiB on a sending one, so the client's own receive buffer is kept
    small and the provider has 128 MiB to send."""
    import http.client

    from tests.fake_upstream import FIREHOSE_BYTES

    server = serve()
    before = _rss()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    body = json.dumps({"model": "fake/firehose", "messages": MESSAGES, "stream": True})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    try:
        resp.read(64 * 1024)
        time.sleep(1.5)  # a client that stopped reading
        assert not upstream.sent_last.is_set()
        assert upstream.firehose_sent < FIREHOSE_BYTES // 2
        assert _rss() - before < 48 * 1024 * 1024
        total = 64 * 1024 + len(resp.read())
    finally:
        conn.close()
    assert total > FIREHOSE_BYTES
    assert upstream.sent_last.is_set()


def _rss() -> int:
    """This process's resident memory (it holds trayproxy and the fake provider)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_client_that_hangs_up_after_done_has_a_complete_record(serve) -> None:
    """The openai SDK closes the connection as soon as it reads [DONE]; the relay may still
    be waiting for the provider's end of the body. The record is still an answered request,
    with its usage."""
    from tests.conftest import record

    server = serve()
    body = json.dumps(
        {"model": "fake/linger", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        seen = b""
        while b"data: [DONE]" not in seen:
            got = sock.recv(65536)
            assert got, seen
            seen += got
    # hung up at once, as the SDK does
    r = record(server)
    assert (r["status"], r["error"]) == (200, None)
    assert (r["prompt_tokens"], r["completion_tokens"]) == (11, 6)
