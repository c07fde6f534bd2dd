"""What a client of trayproxy sees when its provider misbehaves: requests that reach the
provider at most once, gzip bombs, header floods, answers glued together, a black-holed
address, idle connections, 101 answers, truncated streams, and errors that are not JSON.

The provider is ``tests/hostile_provider.py`` (raw sockets on 127.0.0.1). trayproxy runs
in process (``ProxyServer``), or as a real ``python -m trayproxy serve`` where its memory is
measured (``/proc/PID/status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import http.client
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import UPSTREAM_KEY, free_port, settled
from tests.hostile_provider import (
    Conn,
    Handler,
    HostileProvider,
    Request,
    answer,
    drop,
    head,
    raw,
)
from trayproxy.config.parse import parse
from trayproxy.gateway.provider_client import KEEPALIVE_S
from trayproxy.server.proxy_server import ProxyServer

MiB = 1024 * 1024
MESSAGES = [{"role": "user", "content": "hi"}]
TIMEOUTS = "connect_timeout = 5\nfirst_byte_timeout = 5\nidle_timeout = 5\n"


# ---------------------------------------------------------------- config and servers


def config(providers: dict[str, str], *, server: str = "", models: str = "") -> str:
    """A config with each provider (name -> base_url) keyed with UPSTREAM_KEY."""
    text = f'[server]\nhost = "127.0.0.1"\nport = 0\nwatch_config = false\n{server}\n'
    for name, base_url in providers.items():
        text += f'\n[providers.{name}]\nbase_url = "{base_url}"\napi_key = "{UPSTREAM_KEY}"\n'
        text += TIMEOUTS
    return text + models


@pytest.fixture
def hostile() -> Iterator[Callable[[Handler], HostileProvider]]:
    started: list[HostileProvider] = []

    def start(handler: Handler) -> HostileProvider:
        provider = HostileProvider(handler).start()
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()
    for provider in started:
        assert provider.failures == [], "a hostile provider's handler raised"
        assert provider.protocol_errors == [], "trayproxy sent a malformed request"


@pytest.fixture
def proxy(started) -> Callable[[str], ProxyServer]:
    return lambda text: started(parse(text, file="hostile.toml"))


@dataclass
class Served:
    """A ``python -m trayproxy serve`` process."""

    proc: subprocess.Popen[bytes]
    base_url: str
    console: Path

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0]) * 1024
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")

    def rss(self) -> int:
        return self._status("VmRSS")

    def peak(self) -> int:
        """The highest RSS since the start or the last ``reset_peak``."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Served]]:
    started: list[Served] = []

    def start(text: str) -> Served:
        home = tmp_path / f"served-{len(started)}"
        home.mkdir()
        (home / "config.toml").write_text(text)
        console = home / "console.txt"
        port = free_port()
        with console.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trayproxy", "serve", "--port", str(port)],
                env={**os.environ, "TRAYPROXY_HOME": str(home)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        served = Served(proc, f"http://127.0.0.1:{port}/v1", console)
        started.append(served)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"trayproxy serve exited {proc.returncode}:\n{console.read_text()}")
            with contextlib.suppress(OSError):
                if get(served.base_url + "/models") == 200:
                    return served
            time.sleep(0.05)
        pytest.fail(f"trayproxy serve did not start:\n{console.read_text()}")

    yield start
    for served in started:
        served.proc.terminate()
        try:
            served.proc.wait(10)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(5)


# ---------------------------------------------------------------- the client side


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    seconds: float

    def error(self) -> dict[str, Any]:
        """The OpenAI-shaped error in the body, its shape checked."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        data = json.loads(self.body)
        assert set(data) == {"error"}, data
        assert set(data["error"]) == {"message", "type", "param", "code"}, data
        return data["error"]


def get(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        conn.request("GET", parts.path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def post(
    base_url: str, endpoint: str, obj: object, *, timeout: float = 10.0, limit: int = 16 * MiB
) -> Answer:
    """POST JSON straight to 127.0.0.1 (no proxy); at most ``limit`` bytes of the body."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(
            "POST",
            f"{parts.path}/{endpoint}",
            body=json.dumps(obj).encode(),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        body = resp.read(limit)
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return Answer(resp.status, headers, body, time.monotonic() - started)
    finally:
        conn.close()


def chat(base_url: str, model: str = "fake/m", **extra: Any) -> Answer:
    return post(base_url, "chat/completions", {"model": model, "messages": MESSAGES, **extra})


@contextlib.contextmanager
def stream(base_url: str, model: str = "fake/m") -> Iterator[http.client.HTTPResponse]:
    """A streamed chat request whose answer the test reads at its own pace."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        body = {"model": model, "messages": MESSAGES, "stream": True}
        conn.request(
            "POST",
            parts.path + "/chat/completions",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        yield conn.getresponse()
    finally:
        conn.close()


def data_lines(text: bytes) -> list[str]:
    return [line[6:] for line in text.decode().split("\n") if line.startswith("data: ")]


def record(server: ProxyServer) -> dict[str, Any]:
    settled(server.logbook)
    return server.logbook.recent(1)[0].to_dict()


# ---------------------------------------------------------------- what the provider sends


def completion(text: str = "Hello from the hostile provider.") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }
    ).encode()


def chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def sse_stream(*events: bytes) -> Handler:
    """200 text/event-stream framed by the connection's end: events, then close."""

    async def handle(conn: Conn, request: Request) -> bool:
        await conn.send(head(200, [("Content-Type", "text/event-stream"), ("Connection", "close")]))
        for item in events:
            await conn.send(item)
            await asyncio.sleep(0.02)
        conn.close()
        return False

    return handle


NORMAL_STREAM = event(chunk("Hel")) + event(chunk("lo", "stop")) + b"data: [DONE]\n\n"
SSE_EVENT = event(chunk("x" * 900))
SSE_BLOCK = SSE_EVENT * (MiB // len(SSE_EVENT))
SPACES = b" " * MiB


@functools.lru_cache(maxsize=4)
def gzip_bomb(block: bytes, repeats: int) -> bytes:
    """A valid gzip member that inflates to ``block * repeats`` without ever holding it:
    a full flush resets the compressor, so every copy of ``block`` compresses to the same
    bytes, and the compressed block is repeated."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()
    crc = 0
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    trailer = struct.pack("<II", crc, (len(block) * repeats) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + packed * repeats + end + trailer


def gzipped(body: bytes, content_type: str = "application/json") -> Handler:
    return answer(200, body, content_type=content_type, headers=[("Content-Encoding", "gzip")])


# ---------------------------------------------------------------- 1. at most once per attempt


def test_a_provider_that_drops_the_request_gets_it_once(hostile, proxy) -> None:
    """The provider reads the POST and hangs up: 502 naming it, and it saw one POST."""
    fake = hostile(drop)
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    assert ans.status == 502, ans
    err = ans.error()
    assert err["code"] == "upstream_error"
    assert re.search(r"'fake'.*closed the connection", err["message"]), err["message"]
    assert fake.count("POST") == 1


def test_a_warm_pool_does_not_resend_a_dropped_request(hostile, proxy) -> None:
    """With idle keep-alive connections in the pool, a dropped request is still sent once."""
    fake = hostile(answer(200, completion(), delay=0.3))
    server = proxy(config({"fake": fake.base_url}))
    with ThreadPoolExecutor(4) as pool:
        warm = list(pool.map(lambda _: chat(server.base_url), range(4)))
    assert [a.status for a in warm] == [200] * 4
    assert fake.open >= 2, "the warm-up left fewer than 2 idle connections to reuse"
    fake.handler = drop
    before = fake.count("POST")
    ans = chat(server.base_url)
    assert ans.status == 502, ans
    assert ans.error()["code"] == "upstream_error"
    assert fake.count("POST") - before == 1


def test_a_served_trayproxy_sends_each_dropped_request_once(hostile, spawn) -> None:
    """Through ``trayproxy serve``, keep-alive connections idle: two client calls to a
    provider that hangs up, two POSTs at the provider."""
    fake = hostile(answer(200, completion(), delay=0.3))
    served = spawn(config({"fake": fake.base_url}))
    with ThreadPoolExecutor(2) as pool:
        assert [a.status for a in pool.map(lambda _: chat(served.base_url), range(2))] == [200] * 2
    fake.handler = drop
    before = fake.count("POST")
    statuses = [chat(served.base_url).status for _ in range(2)]
    assert statuses == [502, 502]
    assert fake.count("POST") - before == 2


def test_a_dropped_request_falls_back_after_one_post(hostile, proxy) -> None:
    """The first provider hangs up after one POST; the fallback's answer reaches the client."""
    fake = hostile(drop)
    other = hostile(answer(200, completion("from the fallback")))
    models = '\n[models."fake/first"]\nprovider = "fake"\nmodel = "m"\nfallbacks = ["other/id"]\n'
    server = proxy(config({"fake": fake.base_url, "other": other.base_url}, models=models))
    ans = chat(server.base_url, "fake/first")
    assert ans.status == 200, ans
    assert ans.body == completion("from the fallback")
    assert fake.count("POST") == 1
    assert other.count("POST") == 1


# ---------------------------------------------------------------- 2. and 3. gzip bombs


def test_a_gzip_bomb_answer_is_refused_within_max_answer_mb(hostile, spawn) -> None:
    """1 MiB of gzip inflating to 1 GiB: 502 naming max_answer_mb, and little memory used."""
    fake = hostile(answer(200, completion()))
    served = spawn(config({"fake": fake.base_url}, server="max_answer_mb = 8"))
    assert chat(served.base_url).status == 200  # warm up the code paths
    bomb = gzip_bomb(SPACES, 1024)
    fake.handler = gzipped(bomb)
    served.reset_peak()
    before = served.rss()
    ans = chat(served.base_url)
    growth = served.peak() - before
    shown = f"{ans.status} {ans.body[:300]!r}, peak RSS grew {growth / MiB:.0f} MiB"
    assert ans.status == 502, shown
    err = ans.error()
    assert err["code"] == "upstream_answer_too_large", shown
    assert re.search(r"\bfake\b", err["message"]) and "max_answer_mb" in err["message"], shown
    assert growth < (8 + 40) * MiB, shown


def test_a_gzip_answer_under_the_limit_arrives_decoded(hostile, proxy) -> None:
    """A 600 KiB JSON sent gzipped, with max_answer_mb = 1: the client gets it as sent."""
    original = completion("word " * 120_000)
    assert 500 * 1024 < len(original) < MiB
    fake = hostile(gzipped(gzip.compress(original)))
    server = proxy(config({"fake": fake.base_url}, server="max_answer_mb = 1"))
    ans = chat(server.base_url)
    assert ans.status == 200, ans.body[:300]
    assert "content-encoding" not in ans.headers
    assert ans.body == original


def test_a_gzip_bomb_stream_is_relayed_with_back_pressure(hostile, spawn) -> None:
    """A streamed answer inflating to 1 GiB of events, read 4 MiB and then not at all:
    trayproxy's memory stays flat (it inflates only what the client takes)."""
    fake = hostile(answer(200, NORMAL_STREAM, content_type="text/event-stream"))
    served = spawn(config({"fake": fake.base_url}))
    assert chat(served.base_url, stream=True).status == 200  # warm up
    fake.handler = gzipped(gzip_bomb(SSE_BLOCK, 1024), "text/event-stream")
    served.reset_peak()
    before = served.rss()
    got = b""
    with stream(served.base_url) as resp:
        assert resp.status == 200
        while len(got) < 4 * MiB:
            piece = resp.read1(256 * 1024)
            assert piece, f"the stream ended after {len(got)} bytes"
            got += piece
        time.sleep(1.5)  # a client that stopped reading
        reading = served.peak() - before
    time.sleep(0.3)
    closed = served.peak() - before
    assert got == (SSE_BLOCK * 5)[: len(got)], "the events did not arrive as sent"
    assert reading < 40 * MiB, f"peak RSS grew {reading / MiB:.0f} MiB while the client paused"
    assert closed < 40 * MiB, f"peak RSS grew {closed / MiB:.0f} MiB after the client left"
    assert served.proc.poll() is None


# ---------------------------------------------------------------- 4. header flood


async def flood_of_lines(conn: Conn, request: Request) -> bool:
    """200, then header lines of 8000 bytes without end (capped at 256 MiB)."""
    await conn.send(b"HTTP/1.1 200 OK\r\n")
    value = b"a" * 8000
    for n in range(0, 32 * 1024, 8):
        await conn.send(b"".join(b"X-Junk-%d: %s\r\n" % (n + i, value) for i in range(8)))
    await conn.wait_for_peer_close()
    return False


async def one_endless_line(conn: Conn, request: Request) -> bool:
    """200, then one header line that never ends (capped at 256 MiB)."""
    await conn.send(b"HTTP/1.1 200 OK\r\nX-Junk: ")
    value = b"a" * 65536
    for _ in range(4096):
        await conn.send(value)
    await conn.wait_for_peer_close()
    return False


@pytest.mark.parametrize("flood", [flood_of_lines, one_endless_line], ids=["lines", "one-line"])
def test_a_header_flood_is_cut_off(hostile, spawn, flood: Handler) -> None:
    """Headers without end: 502 within seconds, memory flat, and the next request works."""
    fake = hostile(answer(200, completion()))
    served = spawn(config({"fake": fake.base_url}))
    assert chat(served.base_url).status == 200  # warm up
    fake.handler = flood
    served.reset_peak()
    before = served.rss()
    ans = chat(served.base_url)
    growth = served.peak() - before
    fake.handler = answer(200, completion("after the flood"))
    after = chat(served.base_url)
    shown = f"{ans.status} in {ans.seconds:.1f} s, peak RSS grew {growth / MiB:.0f} MiB"
    assert ans.status == 502, shown
    assert ans.error()["code"] == "upstream_error", shown
    assert ans.seconds < 4, shown
    assert growth < 40 * MiB, shown
    assert (after.status, after.body) == (200, completion("after the flood"))


# ---------------------------------------------------------------- 5. glued answers


async def glued(conn: Conn, request: Request) -> bool:
    """A complete 200 and, in the same write, a 500 nobody asked for; keep-alive."""
    body = completion(f"answer {request.number}")
    stray = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}"
    await conn.send(
        head(200, [("Content-Type", "application/json")], length=len(body)) + body + stray
    )
    return True


def test_an_answer_glued_to_another_is_not_reused(hostile, proxy) -> None:
    """Each client gets its own 200; the connection with extra bytes is not used again."""
    fake = hostile(glued)
    server = proxy(config({"fake": fake.base_url}))
    first = chat(server.base_url)
    second = chat(server.base_url)
    assert (first.status, first.body) == (200, completion("answer 0"))
    assert (second.status, second.body) == (200, completion("answer 1")), second
    assert second.seconds < 2
    assert fake.accepted == 2


# ---------------------------------------------------------------- 6. happy eyeballs


def test_a_black_holed_first_address_is_skipped_quickly(
    hostile, proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """provider.test is 127.0.0.2 (drops every SYN), then 127.0.0.1: answered in < 2.5 s."""
    fake = hostile(answer(200, completion()))
    port = fake.port
    hole = socket.socket()
    fillers: list[socket.socket] = []
    try:
        hole.bind(("127.0.0.2", port))
        hole.listen(0)
        for _ in range(4):  # fill the accept queue: further SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.2", port))
            fillers.append(filler)
        time.sleep(0.1)
        with pytest.raises(OSError):  # the black hole really is one
            socket.create_connection(("127.0.0.2", port), timeout=0.5).close()

        real = socket.getaddrinfo

        def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host in ("provider.test", b"provider.test"):
                number = int(port)
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, number))
                    for ip in ("127.0.0.2", "127.0.0.1")
                ]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        server = proxy(config({"fake": f"http://provider.test:{port}/v1"}))
        ans = chat(server.base_url)
        assert ans.status == 200, ans
        assert ans.body == completion()
        assert ans.seconds < 2.5
        assert fake.count("POST") == 1
    finally:
        for filler in fillers:
            filler.close()
        hole.close()


# ---------------------------------------------------------------- 7. idle connections


def test_idle_connections_are_not_reused_late_and_are_closed(hostile, proxy) -> None:
    """After a burst of 40 requests: a connection idle longer than the keep-alive (4 s, under
    the 5 s after which common servers close theirs) is not used again, and every idle one is
    closed by trayproxy within two keep-alive periods (aiohttp's reaper runs once a period)."""
    fake = hostile(answer(200, completion(), delay=0.2))
    server = proxy(config({"fake": fake.base_url}))
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: chat(server.base_url), range(40)))
    burst_end = time.monotonic()
    assert [a.status for a in answers] == [200] * 40
    right_after = fake.open
    assert right_after >= 20, f"only {right_after} connections open after the burst"
    time.sleep(KEEPALIVE_S + 0.5)
    accepted = fake.accepted
    assert chat(server.base_url).status == 200
    assert fake.accepted == accepted + 1, "a connection idle past the keep-alive was reused"
    left = 2 * KEEPALIVE_S + 1.5 - (time.monotonic() - burst_end)
    fake.wait_until(lambda: fake.open <= 1, timeout=max(left, 0.1))
    assert fake.open <= 1, f"{fake.open} of {fake.accepted} connections still open"
    assert fake.peer_closed >= fake.accepted - 1


# ---------------------------------------------------------------- 8. 101


def test_a_101_answer_is_a_502_not_a_traceback(hostile, proxy, caplog) -> None:
    """101 Switching Protocols: a JSON 502 naming the provider, nothing in the error log."""
    caplog.set_level(logging.DEBUG)
    switch = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    fake = hostile(raw(switch, then="hold"))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    fake.handler = answer(200, completion())
    after = chat(server.base_url)
    assert ans.status == 502, ans
    err = ans.error()
    assert err["code"] == "upstream_error"
    assert re.search(r"\bfake\b", err["message"]), err["message"]
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("trayproxy")
    ]
    assert errors == []
    assert "Traceback" not in caplog.text
    assert (after.status, after.body) == (200, completion())


# ---------------------------------------------------------------- 9. two gzip members


def test_a_two_member_gzip_answer_arrives_whole(hostile, proxy) -> None:
    """A gzip body made of two members (two halves of the JSON): the client gets it all."""
    original = completion("two halves " * 50)
    half = len(original) // 2
    fake = hostile(gzipped(gzip.compress(original[:half]) + gzip.compress(original[half:])))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    assert ans.status == 200
    assert ans.body == original
    assert "content-encoding" not in ans.headers


# ---------------------------------------------------------------- 10. streams without an end


def test_a_stream_that_stops_short_ends_with_an_error(hostile, proxy) -> None:
    """Two chunks, then the provider hangs up without [DONE]: the client sees both chunks,
    then an error event saying the stream was truncated; the record says so too."""
    first, second = chunk("Hel"), chunk("lo")
    fake = hostile(sse_stream(event(first), event(second)))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url, stream=True)
    assert ans.status == 200
    lines = data_lines(ans.body)
    assert [json.loads(line) for line in lines[:2]] == [first, second]
    assert len(lines) == 3, lines
    err = json.loads(lines[2])["error"]
    assert re.search(r"truncat|ended", err["message"], re.I), err
    rec = record(server)
    assert rec["status"] == 200
    assert rec["error"] and re.search(r"truncat", rec["error"], re.I), rec["error"]


def test_a_stream_that_ends_properly_records_no_error(hostile, proxy) -> None:
    """finish_reason, [DONE], then the provider hangs up: no error anywhere."""
    fake = hostile(sse_stream(event(chunk("Hel")), event(chunk("lo", "stop")), b"data: [DONE]\n\n"))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url, stream=True)
    assert ans.status == 200
    lines = data_lines(ans.body)
    assert lines == [json.dumps(chunk("Hel")), json.dumps(chunk("lo", "stop")), "[DONE]"]
    rec = record(server)
    assert rec["status"] == 200 and not rec["error"], rec["error"]


# ---------------------------------------------------------------- 11. errors that are not JSON

CDN_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>cloudflare</center></body></html>"
)
ENVOY = b"upstream connect error or disconnect/reset before headers"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "excerpt"),
    [
        (502, "text/html", CDN_PAGE, "502 Bad Gateway"),
        (503, "text/plain", ENVOY, ENVOY.decode()),
        (500, None, b"", "empty"),
        (502, "text/html", CDN_PAGE.replace(b"<hr>", b"<hr>" + b"<p>padding</p>" * 2000), "502"),
    ],
    ids=["cdn-html", "plain-text", "empty", "long-html"],
)
def test_a_provider_error_that_is_not_json_becomes_one(
    hostile, proxy, status: int, content_type: str | None, body: bytes, excerpt: str
) -> None:
    """The client gets the same status as JSON naming the provider, with a short excerpt."""
    fake = hostile(answer(status, body, content_type=content_type))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    assert ans.status == status
    err = ans.error()
    assert re.search(r"\bfake\b", err["message"]), err["message"]
    assert excerpt.lower() in err["message"].lower(), err["message"]
    assert len(err["message"]) <= 600, len(err["message"])


async def echo_key_as_text(conn: Conn, request: Request) -> bool:
    body = f"Bad upstream credentials: {request.headers['authorization']}".encode()
    await conn.send(head(502, [("Content-Type", "text/plain")], length=len(body)) + body)
    return True


async def echo_key_as_json(conn: Conn, request: Request) -> bool:
    body = json.dumps({"error": {"message": f"key {request.headers['authorization']} refused"}})
    data = body.encode()
    await conn.send(head(500, [("Content-Type", "application/json")], length=len(data)) + data)
    return True


@pytest.mark.parametrize("echo", [echo_key_as_text, echo_key_as_json], ids=["text", "json"])
def test_a_provider_error_echoing_the_key_does_not_show_it(hostile, proxy, echo) -> None:
    """The provider's error repeats trayproxy's key for it: the client never sees the key."""
    fake = hostile(echo)
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    assert UPSTREAM_KEY in fake.requests[0].headers["authorization"]  # it was echoed
    assert ans.status >= 500
    seen = ans.body.decode(errors="replace") + json.dumps(ans.headers)
    for i in range(len(UPSTREAM_KEY) - 7):
        assert UPSTREAM_KEY[i : i + 8] not in seen, seen


# ---------------------------------------------------------------- 12. endpoint not served


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain; charset=utf-8", b"404 page not found"),
        ("application/json", b'{"detail":"Not Found"}'),
    ],
    ids=["go", "fastapi"],
)
def test_a_provider_without_the_endpoint_says_so(hostile, proxy, content_type, body) -> None:
    """POST /v1/rerank answered by a bare 404: 'does not serve /rerank', naming it."""
    fake = hostile(answer(404, body, content_type=content_type))
    server = proxy(config({"fake": fake.base_url}))
    ans = post(server.base_url, "rerank", {"model": "fake/m", "query": "q", "documents": ["a"]})
    assert [r.path for r in fake.requests] == ["/v1/rerank"]
    assert ans.status == 404
    err = ans.error()
    assert re.search(r"does not serve\b.*/rerank", err["message"]), err["message"]
    assert re.search(r"\bfake\b", err["message"]), err["message"]


# ---------------------------------------------------------------- 13. a typo behind a prefix


def test_a_typo_routed_by_prefix_gets_a_suggestion(hostile, proxy) -> None:
    """nvidia/kimi-k2-thinkng reaches nvidia, which says model_not_found: 'Did you mean'."""
    body = json.dumps(
        {
            "error": {
                "message": "The model `kimi-k2-thinkng` does not exist or you do not have "
                "access to it.",
                "type": "invalid_request_error",
                "code": "model_not_found",
            }
        }
    ).encode()
    fake = hostile(answer(404, body))
    models = (
        '\n[models."nvidia/kimi-k2-thinking"]\nprovider = "nvidia"\n'
        'model = "moonshotai/kimi-k2-thinking"\n'
    )
    server = proxy(config({"nvidia": fake.base_url}, models=models))
    ans = chat(server.base_url, "nvidia/kimi-k2-thinkng")
    assert fake.requests[0].json()["model"] == "kimi-k2-thinkng"
    assert ans.status == 404
    message = ans.error()["message"]
    assert "Did you mean" in message and "nvidia/kimi-k2-thinking" in message, message


def test_an_empty_404_for_a_prefix_routed_typo_says_both_and_suggests(hostile, proxy) -> None:
    """Some providers answer an unknown model with a bare, empty 404: the message names both
    causes (no such endpoint, no such model) and still offers the nearest ids."""
    fake = hostile(answer(404, b"", content_type=None))
    models = (
        '\n[models."nvidia/kimi-k2-thinking"]\nprovider = "nvidia"\n'
        'model = "moonshotai/kimi-k2-thinking"\n'
    )
    server = proxy(config({"nvidia": fake.base_url}, models=models))
    ans = chat(server.base_url, "nvidia/kimi-k2-thinkng")
    assert ans.status == 404
    message = ans.error()["message"]
    assert "does not serve /chat/completions" in message, message
    assert "no model 'kimi-k2-thinkng'" in message, message
    assert "Did you mean 'nvidia/kimi-k2-thinking'" in message, message


def test_an_error_that_is_a_json_list_passes_through(hostile, proxy) -> None:
    """Gemini's OpenAI endpoint answers errors as a one-element list: still JSON, passed on."""
    body = b'[{"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID"}}]'
    fake = hostile(answer(400, body))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    assert (ans.status, ans.body) == (400, body)
    settled(server.logbook)
    assert server.logbook.recent(1)[0].to_dict()["error"] == "Invalid JSON payload"


def test_a_huge_error_answer_is_not_read_whole(hostile, proxy) -> None:
    """A 400 whose body is 8 MiB (an echo of a long request, say) is cut at 1 MiB: the client
    gets a short JSON error naming the provider, quickly."""
    fake = hostile(answer(400, b'{"error": {"message": "' + b"x" * (8 * MiB) + b'"}}'))
    server = proxy(config({"fake": fake.base_url}))
    ans = chat(server.base_url)
    assert ans.status == 400
    err = ans.error()
    assert "'fake'" in err["message"] and "over 1024 KiB" in err["message"], err["message"]
    assert len(ans.body) < 1000


def test_a_provider_header_with_a_control_character_is_dropped(hostile, proxy) -> None:
    """aiohttp's client accepts a header value holding a control character; its server would
    refuse to send it on. trayproxy drops that header and answers normally."""
    fake = hostile(answer(200, completion(), headers=[("X-Odd", "a\x01b"), ("X-Fine", "ok")]))
    server = proxy(config({"fake": fake.base_url}))
    for model in ("fake/m", "fake/m"):
        ans = chat(server.base_url, model)
        assert (ans.status, ans.body) == (200, completion())
        assert "x-odd" not in ans.headers and ans.headers["x-fine"] == "ok"
