"""Providers over TLS and through HTTP proxies, end to end: a client asks trayproxy, trayproxy
asks the provider (directly, through an HTTP proxy, or through a ``CONNECT`` tunnel).

The provider and the proxy are scripted asyncio servers on 127.0.0.1 that log what they see
and count their connections. TLS uses a test authority (trustme): a ``trayproxy serve``
subprocess trusts it through ``SSL_CERT_FILE``; an in-process ``ProxyServer`` does not.
Proxies come from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``), as a user
sets them. The test's own requests to trayproxy use ``http.client``, which ignores them.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, config_text, free_port, settled
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

MODEL = "nvidia/kimi-k2-thinking"  # config_text maps it to provider "fake" ...
UPSTREAM_MODEL = "moonshotai/kimi-k2-thinking"  # ... under this name
# spaced and ordered as no JSON serializer would redo it: a re-encoded answer shows
ANSWER = (
    b'{"object": "chat.completion",  "id": "chatcmpl-tls", "created": 1,'
    b' "model": "moonshotai/kimi-k2-thinking", "choices": [{"index": 0,'
    b' "message": {"role": "assistant", "content": "over the wire"},'
    b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 3,'
    b' "total_tokens": 6}}'
)
PROXY_USER, PROXY_PASSWORD = "u@x", "p:w"  # percent-encoded in the proxy URL
PROXY_SECRET = "pr0xy-s3cret-9d7e"  # a password that must come out nowhere


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------- scripted servers


async def read_head(reader: asyncio.StreamReader) -> tuple[bytes, str, list[tuple[str, str]]]:
    """The raw head, its first line, and its header lines (name lower-cased, in order)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    ]
    return head, lines[0], headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return body
            body += chunk[:-2]
    return await reader.readexactly(int(headers.get("content-length", "0")))


class Scripted:
    """An asyncio server on 127.0.0.1 (TLS if given a context): ``handler`` runs once per
    connection. Started and closed on the background loop."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            except asyncio.CancelledError:  # closed by the test: end quietly
                pass
            finally:
                self._tasks.discard(task)
                writer.close()

        self._server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):  # handlers still piping or waiting: end them here
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Background:
    """An event loop in a daemon thread that hosts the scripted servers of one test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._servers: list[Scripted] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, handler: Handler, tls: ssl.SSLContext | None = None) -> Scripted:
        server = Scripted(handler, tls)
        self.run(server.start())
        self._servers.append(server)
        return server

    def close(self) -> None:
        try:
            for server in self._servers:
                self.run(server.close(), 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self.loop.close()


class Provider:
    """An OpenAI-style provider that answers ``ANSWER`` to every request, on kept-alive
    connections; it logs each request (line, headers, JSON body)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, line, pairs = await read_head(reader)
            headers = dict(pairs)
            body = await read_body(reader, headers)
            self.seen.append((line, headers, json.loads(body) if body else None))
            close = headers.get("connection", "").lower() == "close"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + (b"Connection: close\r\n" if close else b"")
                + b"Content-Length: %d\r\n\r\n" % len(ANSWER)
                + ANSWER
            )
            await writer.drain()
            if close:
                return


HOP_BY_HOP = ("proxy-authorization", "proxy-connection", "connection", "keep-alive")


class ForwardProxy:
    """An HTTP proxy: ``CONNECT`` tunnels and absolute-form requests, each head logged.

    As a real proxy, it consumes the ``Proxy-Authorization`` it is sent: a plain request goes
    on without it (and with ``Connection: close``, one request per connection), a tunnel
    carries bytes verbatim, so the provider sees in it exactly what trayproxy sent.
    """

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []

    def lines(self) -> list[str]:
        return [line for line, _ in self.seen]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, line, headers = await read_head(reader)
        self.seen.append((line, headers))
        if self.refuse:
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            await writer.drain()
            return
        method, where, version = line.split(" ")
        if method == "CONNECT":
            host, port = where.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # http://host:port/path: on to the provider with the path only
            hostport, _, path = where.split("://", 1)[1].partition("/")
            host, port = hostport.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            kept = [f"{k}: {v}\r\n" for k, v in headers if k not in HOP_BY_HOP]
            up_writer.write(
                f"{method} /{path} {version}\r\n{''.join(kept)}Connection: close\r\n\r\n".encode(
                    "latin-1"
                )
            )
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A listener that only counts connections (a provider or a SOCKS proxy trayproxy must
    not reach): it hangs up at once, so that a test reaching it fails fast."""


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def background() -> Iterator[Background]:
    bg = Background()
    yield bg
    bg.close()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def authority_pem(authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "test-authority.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def in_process(started) -> Callable[[str], ProxyServer]:
    """Start an in-process trayproxy for a provider URL (``config_text``'s models)."""
    return lambda provider_url: started(parse(config_text(provider_url), file="tls-proxies.toml"))


class Serve:
    """A ``python -m trayproxy serve`` subprocess."""

    def __init__(self, home: Path, provider_url: str, env: dict[str, str]) -> None:
        self.port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config_text(provider_url, port=self.port))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trayproxy", "serve"],
            env={**os.environ, "TRAYPROXY_HOME": str(home), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.console = ""
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"trayproxy serve did not start:\n{self.stop()}")

    def stop(self) -> str:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                self.console, _ = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.console, _ = self.proc.communicate(timeout=5)
        return self.console


@pytest.fixture
def serve_subprocess(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], Serve]]:
    started: list[Serve] = []

    def start(provider_url: str, env: dict[str, str]) -> Serve:
        serve = Serve(tmp_path / f"home{len(started)}", provider_url, env)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.stop()


def chat(port: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A chat request to trayproxy with ``http.client`` (which no *_PROXY variable steers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        conn.request(
            "POST",
            "/v1/chat/completions",
            body,
            {"Content-Type": "application/json", **(headers or {})},
        )
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def unreachable(status: int, body: bytes) -> str:
    """The OpenAI-shaped 502 trayproxy answers when it cannot reach the provider: its
    message, checked to name the provider."""
    assert status == 502, body
    error = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert error["code"] == "upstream_unreachable", error
    assert "fake" in error["message"], error  # the provider's name
    return str(error["message"])


def record(server: ProxyServer) -> dict[str, Any]:
    settled(server.logbook)
    return server.logbook.recent(1)[0].to_dict()


def assert_no_secrets(*texts: str) -> None:
    secrets = [
        UPSTREAM_KEY,
        PROXY_SECRET,
        PROXY_PASSWORD,
        basic(PROXY_USER, PROXY_PASSWORD),
        basic("user", PROXY_SECRET),
        base64.b64encode(f"user:{PROXY_SECRET}".encode()).decode(),
        base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode(),
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret!r} appears in {text!r}"


# ---------------------------------------------------------------- TLS


def test_https_provider_with_a_trusted_certificate_one_connection(
    background: Background,
    authority: trustme.CA,
    authority_pem: Path,
    serve_subprocess: Callable[[str, dict[str, str]], Serve],
) -> None:
    provider = Provider()
    upstream = background.serve(provider.handle, tls=server_tls(authority))
    serve = serve_subprocess(
        f"https://localhost:{upstream.port}", {"SSL_CERT_FILE": str(authority_pem)}
    )
    assert upstream.connections == 0
    for _ in range(3):
        status, body = chat(serve.port)
        assert (status, body) == (200, ANSWER), serve.stop()
    assert len(provider.seen) == 3
    assert provider.seen[0][2]["model"] == UPSTREAM_MODEL
    assert upstream.connections == 1  # one TLS handshake, kept alive for the next requests


def test_https_provider_with_an_untrusted_certificate_is_502(
    background: Background, authority: trustme.CA, in_process: Callable[[str], ProxyServer]
) -> None:
    provider = Provider()
    upstream = background.serve(provider.handle, tls=server_tls(authority))
    server = in_process(f"https://localhost:{upstream.port}")
    status, body = chat(server.port)
    message = unreachable(status, body)
    assert "certificate" in message.lower()
    assert provider.seen == []  # nothing was sent over an untrusted connection
    rec = record(server)
    assert rec["status"] == 502 and "certificate" in str(rec["error"]).lower()
    assert_no_secrets(body.decode(), json.dumps(rec))


# ---------------------------------------------------------------- HTTP proxies


def test_plain_http_provider_through_a_proxy_with_credentials(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    provider, proxy = Provider(), ForwardProxy()
    upstream = background.serve(provider.handle)
    via = background.serve(proxy.handle)
    monkeypatch.setenv("HTTP_PROXY", f"http://u%40x:p%3Aw@127.0.0.1:{via.port}")
    server = in_process(f"http://127.0.0.1:{upstream.port}")
    status, body = chat(
        server.port,
        {"Authorization": f"Bearer {CLIENT_KEY}", "Proxy-Authorization": "Basic Y2xpZW50"},
    )
    assert (status, body) == (200, ANSWER)
    assert len(proxy.seen) == 1
    line, headers = proxy.seen[0]
    assert line == f"POST http://127.0.0.1:{upstream.port}/v1/chat/completions HTTP/1.1"
    # the proxy's credentials, decoded from the URL, and only those (not the client's)
    assert [v for k, v in headers if k == "proxy-authorization"] == [
        basic(PROXY_USER, PROXY_PASSWORD)
    ]
    assert len(provider.seen) == 1
    _, sent, payload = provider.seen[0]
    assert payload["model"] == UPSTREAM_MODEL
    assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "proxy-authorization" not in sent
    assert_no_secrets(json.dumps(record(server)))


def test_https_provider_through_a_connect_tunnel_reused(
    background: Background,
    authority: trustme.CA,
    authority_pem: Path,
    serve_subprocess: Callable[[str, dict[str, str]], Serve],
) -> None:
    provider, proxy = Provider(), ForwardProxy()
    upstream = background.serve(provider.handle, tls=server_tls(authority))
    via = background.serve(proxy.handle)
    serve = serve_subprocess(
        f"https://localhost:{upstream.port}",
        {
            "SSL_CERT_FILE": str(authority_pem),
            "HTTPS_PROXY": f"http://user:{PROXY_SECRET}@127.0.0.1:{via.port}",
        },
    )
    for _ in range(2):
        status, body = chat(serve.port)
        assert (status, body) == (200, ANSWER), serve.stop()
    assert proxy.lines() == [f"CONNECT localhost:{upstream.port} HTTP/1.1"]
    headers = dict(proxy.seen[0][1])
    assert headers["proxy-authorization"] == basic("user", PROXY_SECRET)
    assert via.connections == 1 and upstream.connections == 1
    assert len(provider.seen) == 2
    for _, sent, payload in provider.seen:  # what went inside the tunnel
        assert payload["model"] == UPSTREAM_MODEL
        assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert "proxy-authorization" not in sent
    assert_no_secrets(serve.stop())


def test_a_proxy_refusing_the_tunnel_is_502_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    proxy = ForwardProxy(refuse=True)
    upstream = background.serve(hang_up)
    via = background.serve(proxy.handle)
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:{PROXY_SECRET}@127.0.0.1:{via.port}")
    server = in_process(f"https://localhost:{upstream.port}")
    status, body = chat(server.port)
    message = unreachable(status, body)
    assert "407" in message
    assert proxy.lines() == [f"CONNECT localhost:{upstream.port} HTTP/1.1"]
    assert upstream.connections == 0
    rec = record(server)
    assert rec["status"] == 502
    assert_no_secrets(body.decode(), json.dumps(rec))


def test_a_socks_proxy_is_502_and_the_provider_is_not_contacted(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    upstream = background.serve(hang_up)
    socks = background.serve(hang_up)
    monkeypatch.setenv("HTTPS_PROXY", f"socks5://user:{PROXY_SECRET}@127.0.0.1:{socks.port}")
    server = in_process(f"https://localhost:{upstream.port}")
    status, body = chat(server.port)
    message = unreachable(status, body)
    assert "socks" in message.lower()
    assert upstream.connections == 0
    assert_no_secrets(body.decode(), json.dumps(record(server)))


def test_no_proxy_naming_the_provider_host_bypasses_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    provider, proxy = Provider(), ForwardProxy()
    upstream = background.serve(provider.handle)
    via = background.serve(proxy.handle)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{via.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{via.port}")
    monkeypatch.setenv("NO_PROXY", "example.invalid,127.0.0.1")
    server = in_process(f"http://127.0.0.1:{upstream.port}")
    assert chat(server.port) == (200, ANSWER)
    assert proxy.seen == [] and via.connections == 0
    assert len(provider.seen) == 1 and provider.seen[0][0] == "POST /v1/chat/completions HTTP/1.1"


def test_proxy_settings_are_read_again_when_the_config_is_applied(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    provider, proxy = Provider(), ForwardProxy()
    upstream = background.serve(provider.handle)
    via = background.serve(proxy.handle)
    url = f"http://127.0.0.1:{upstream.port}"
    server = in_process(url)
    assert chat(server.port) == (200, ANSWER)
    assert proxy.seen == []  # no proxy set yet: straight to the provider
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{via.port}")
    server.apply(parse(config_text(url), file="tls-proxies.toml"))
    assert chat(server.port) == (200, ANSWER)
    assert proxy.lines() == [f"POST {url}/v1/chat/completions HTTP/1.1"]
    assert len(provider.seen) == 2


def test_a_proxy_that_never_answers_the_tunnel_is_connect_timeout(
    monkeypatch: pytest.MonkeyPatch, background: Background, started: Any
) -> None:
    """A proxy that takes the connection but never answers ``CONNECT``: the request ends
    after the provider's ``connect_timeout``, not its ten-minute ``first_byte_timeout``."""
    heard = threading.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        heard.set()
        await reader.read()  # until trayproxy gives up and hangs up

    via = background.serve(silent)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{via.port}")
    text = config_text("https://localhost:1").replace(
        'api_key = "' + UPSTREAM_KEY + '"\n',
        'api_key = "' + UPSTREAM_KEY + '"\nconnect_timeout = 0.5\n',
        1,
    )
    server = started(parse(text, file="silent-proxy.toml"))
    began = time.monotonic()
    status, body = chat(server.port)
    took = time.monotonic() - began
    message = unreachable(status, body)
    assert heard.is_set()
    assert "connect_timeout" in message and "0.5 s" in message
    assert took < 5, took


def test_a_proxy_named_without_a_scheme_is_http(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    """``HTTP_PROXY=user:pass@host:port`` (no ``http://``), as many set it, works like
    curl takes it: an HTTP proxy."""
    provider, proxy = Provider(), ForwardProxy()
    upstream = background.serve(provider.handle)
    via = background.serve(proxy.handle)
    monkeypatch.setenv("HTTP_PROXY", f"user:{PROXY_SECRET}@127.0.0.1:{via.port}")
    server = in_process(f"http://127.0.0.1:{upstream.port}")
    assert chat(server.port) == (200, ANSWER)
    line, headers = proxy.seen[0]
    assert line == f"POST http://127.0.0.1:{upstream.port}/v1/chat/completions HTTP/1.1"
    assert [v for k, v in headers if k == "proxy-authorization"] == [basic("user", PROXY_SECRET)]


def test_a_proxy_that_is_down_is_named_as_the_one_unreachable(
    monkeypatch: pytest.MonkeyPatch,
    background: Background,
    in_process: Callable[[str], ProxyServer],
) -> None:
    """The proxy refuses connections: the message blames the proxy, not the provider's host,
    and carries no credentials."""
    upstream = background.serve(hang_up)
    dead = free_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:{PROXY_SECRET}@127.0.0.1:{dead}")
    server = in_process(f"https://localhost:{upstream.port}")
    status, body = chat(server.port)
    message = unreachable(status, body)
    assert f"proxy 127.0.0.1:{dead}" in message, message
    assert upstream.connections == 0
    assert_no_secrets(body.decode(), json.dumps(record(server)))
