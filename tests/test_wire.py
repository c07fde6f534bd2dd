"""trayproxy's HTTP/1.1 client (``trayproxy/wire.py``) against real servers on 127.0.0.1.

The relay tests drive it through trayproxy with the fake provider (JSON, SSE, gzip, errors,
timeouts, a provider dying mid-stream). These cover what those cannot reach: connection reuse,
a provider closing an idle connection, answers framed by the connection's end, TLS with a
certificate of a test authority, HTTP proxies (plain and ``CONNECT``), back-pressure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme

from tests.conftest import UPSTREAM_KEY
from trayproxy import wire
from trayproxy.config import parse
from trayproxy.server import ProxyServer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON_ANSWER = b'{"ok":true}'


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def answer(body: bytes = JSON_ANSWER, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class Server:
    """A scripted server: ``handler`` runs once per connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Server:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                self._tasks.discard(task)
                writer.close()

        self._server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):  # handlers still piping or waiting: end them here
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/v1/chat/completions"


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def post(client: wire.Client, url: str, **kwargs: Any) -> tuple[int, bytes]:
    resp = await client.post(url, b'{"model":"m"}', {"content-type": "application/json"}, **kwargs)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


def test_sequential_requests_share_one_connection() -> None:
    async def main() -> None:
        async with Server(keep_alive) as server:
            client = wire.Client()
            for _ in range(5):
                assert await post(client, server.url()) == (200, JSON_ANSWER)
            assert server.connections == 1
            assert client.idle_connections() == 1
            await client.close()

    run(main())


def test_a_connection_the_provider_closed_while_idle_is_replaced() -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)
        writer.write(answer())  # says keep-alive, then hangs up after a while
        await writer.drain()
        await asyncio.sleep(0.1)

    async def main() -> None:
        async with Server(one_answer_then_close) as server:
            client = wire.Client()
            assert await post(client, server.url()) == (200, JSON_ANSWER)
            await asyncio.sleep(0.3)  # the server has closed the pooled connection
            assert await post(client, server.url()) == (200, JSON_ANSWER)
            assert server.connections == 2
            await client.close()

    run(main())


def test_a_reused_connection_closed_as_the_request_goes_out_is_retried_once() -> None:
    """The keep-alive race: the provider reads nothing more and hangs up on the new request."""
    seen: list[int] = []

    async def answer_once(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request arrives: hang up unanswered
        seen.append(1)

    async def main() -> None:
        async with Server(answer_once) as server:
            client = wire.Client()
            assert await post(client, server.url()) == (200, JSON_ANSWER)
            assert await post(client, server.url()) == (200, JSON_ANSWER)
            assert server.connections == 2 and seen == [1]
            await client.close()

    run(main())


def test_a_new_connection_closed_before_answering_is_an_error_not_a_retry() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)

    async def main() -> None:
        async with Server(hang_up) as server:
            client = wire.Client()
            with pytest.raises(wire.WireError, match="closed the connection before answering"):
                await post(client, server.url())
            assert server.connections == 1
            await client.close()

    run(main())


def test_an_answer_framed_by_the_end_of_the_connection_is_read_whole() -> None:
    body = b"x" * 300_000

    async def until_close(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i in range(0, len(body), 50_000):
            writer.write(body[i : i + 50_000])
            await writer.drain()

    async def main() -> None:
        async with Server(until_close) as server:
            client = wire.Client()
            assert await post(client, server.url()) == (200, body)
            assert client.idle_connections() == 0  # such a connection cannot be reused
            await client.close()

    run(main())


def test_an_answer_cut_short_is_an_error() -> None:
    async def cut(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async def main() -> None:
        async with Server(cut) as server:
            client = wire.Client()
            resp = await client.post(server.url(), b"{}", {})
            with pytest.raises(wire.WireError, match="in the middle of its answer"):
                await resp.read()
            resp.release()
            assert client.idle_connections() == 0
            await client.close()

    run(main())


def test_an_answer_that_is_not_http_is_an_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await asyncio.sleep(1)

    async def main() -> None:
        async with Server(garbage) as server:
            client = wire.Client()
            with pytest.raises(wire.WireError, match="not valid HTTP"):
                await post(client, server.url())
            await client.close()

    run(main())


def test_refused_connection_is_a_connect_error() -> None:
    async def main() -> None:
        client = wire.Client()
        with pytest.raises(wire.ConnectError, match=r"111|refused"):
            await post(client, "http://127.0.0.1:9/v1/chat/completions")
        await client.close()

    run(main())


def test_headers_that_would_split_the_request_are_refused() -> None:
    async def main() -> None:
        async with Server(keep_alive) as server:
            client = wire.Client()
            with pytest.raises(wire.WireError, match="line break"):
                await client.post(server.url(), b"{}", {"x-extra": "a\r\nInjected: 1"})
            assert server.connections == 0
            await client.close()

    run(main())


def test_a_request_cancelled_while_waiting_closes_its_connection() -> None:
    async def slow(reader: asyncio.StreamReader, writer: Any) -> None:
        await read_request(reader)
        await asyncio.sleep(0.5)
        writer.write(answer())
        await writer.drain()
        await keep_alive(reader, writer)

    async def main() -> None:
        async with Server(slow) as server:
            client = wire.Client()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(post(client, server.url()), 0.1)
            assert client.idle_connections() == 0  # its late answer must not reach anyone
            assert await post(client, server.url()) == (200, JSON_ANSWER)
            assert server.connections == 2
            await client.close()

    run(main())


def test_reading_pauses_while_the_reader_is_slow() -> None:
    size = 16 * 1024 * 1024
    blob = bytes(range(256)) * (size // 256)
    sent = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for i in range(0, size, 1 << 20):
            writer.write(blob[i : i + (1 << 20)])
            await writer.drain()
        sent.set()

    async def main() -> None:
        async with Server(firehose) as server:
            client = wire.Client()
            resp = await client.post(server.url(), b"{}", {})
            await asyncio.sleep(0.5)  # nobody reads
            assert resp._buffered <= wire.HIGH_WATER + 512 * 1024
            assert not sent.is_set()  # the server is held back too
            data = await resp.read()
            resp.release()
            assert hashlib.sha256(data).digest() == hashlib.sha256(blob).digest()
            assert sent.is_set()
            await client.close()

    run(main())


# ---------------------------------------------------------------- TLS and proxies


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_https_with_a_trusted_certificate(authority: trustme.CA) -> None:
    async def main() -> None:
        async with Server(keep_alive, tls=server_tls(authority)) as server:
            client = wire.Client(trusting(authority))
            for _ in range(3):
                assert await post(client, server.url("https", "localhost")) == (200, JSON_ANSWER)
            assert server.connections == 1
            await client.close()

    run(main())


def test_https_with_an_untrusted_certificate_is_refused(authority: trustme.CA) -> None:
    async def main() -> None:
        async with Server(keep_alive, tls=server_tls(authority)) as server:
            client = wire.Client()  # the system's trust store: the test authority is not in it
            with pytest.raises(wire.ConnectError, match="TLS certificate not trusted"):
                await post(client, server.url("https", "localhost"))
            await client.close()

    run(main())


class ForwardProxy:
    """An HTTP proxy: ``CONNECT`` tunnels and absolute-form requests, each one logged."""

    def __init__(self, refuse: bool = False, silent: bool = False) -> None:
        self.refuse = refuse
        self.silent = silent
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        self.seen.append((lines[0], headers))
        if self.silent:
            await asyncio.sleep(5)
            return
        if self.refuse:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        method, where, _ = lines[0].split(" ")
        if method == "CONNECT":
            host, port = where.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # http://host:port/path: forward with the path only
            rest = where.split("://", 1)[1]
            hostport, _, path = rest.partition("/")
            host, port = hostport.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            up_writer.write(head.replace(where.encode(), b"/" + path.encode(), 1))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def test_plain_http_through_a_proxy_with_credentials() -> None:
    proxy = ForwardProxy()

    async def main() -> None:
        async with Server(keep_alive) as server, Server(proxy.handle) as via:
            client = wire.Client()
            url = server.url()
            for _ in range(2):
                status, body = await post(
                    client, url, proxy=f"http://u%40x:p%3Aw@127.0.0.1:{via.port}"
                )
                assert (status, body) == (200, JSON_ANSWER)
            assert via.connections == 1 and server.connections == 1
            line, headers = proxy.seen[0]
            assert line == f"POST {url} HTTP/1.1"
            assert (
                headers["proxy-authorization"] == "Basic " + base64.b64encode(b"u@x:p:w").decode()
            )
            await client.close()

    run(main())


def test_https_through_a_proxy_tunnel(authority: trustme.CA) -> None:
    proxy = ForwardProxy()

    async def main() -> None:
        async with (
            Server(keep_alive, tls=server_tls(authority)) as server,
            Server(proxy.handle) as via,
        ):
            client = wire.Client(trusting(authority))
            url = server.url("https", "localhost")
            for _ in range(2):
                status, body = await post(client, url, proxy=f"http://127.0.0.1:{via.port}")
                assert (status, body) == (200, JSON_ANSWER)
            assert proxy.seen == [
                (
                    f"CONNECT localhost:{server.port} HTTP/1.1",
                    {"host": f"localhost:{server.port}"},
                )
            ]
            assert server.connections == 1
            await client.close()

    run(main())


def test_a_proxy_that_refuses_the_tunnel(authority: trustme.CA) -> None:
    async def main() -> None:
        async with Server(ForwardProxy(refuse=True).handle) as via:
            client = wire.Client(trusting(authority))
            with pytest.raises(wire.ConnectError, match="407 Proxy Authentication Required"):
                await post(client, "https://localhost:1/v1/x", proxy=f"http://127.0.0.1:{via.port}")
            await client.close()

    run(main())


def test_a_proxy_that_never_answers_times_out_as_connect_timeout() -> None:
    async def main() -> None:
        async with Server(ForwardProxy(silent=True).handle) as via:
            client = wire.Client()
            with pytest.raises(wire.ConnectError, match=r"within 0.3 s \(connect_timeout\)"):
                await post(
                    client,
                    "https://localhost:1/v1/x",
                    proxy=f"http://127.0.0.1:{via.port}",
                    connect_timeout=0.3,
                )
            await client.close()

    run(main())


def test_trayproxy_sends_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, upstream: Any
) -> None:
    """End to end: HTTP_PROXY set, the relayed request goes via the proxy to the provider."""
    import threading

    proxy = ForwardProxy()
    ready = threading.Event()
    port: list[int] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def serve() -> None:
        async def main() -> None:
            async with Server(proxy.handle) as via:
                port.append(via.port)
                ready.set()
                await stop.wait()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port[0]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    config = parse(
        "[server]\nport = 0\n"
        f'[providers.fake]\nbase_url = "{upstream.url}/v1"\napi_key = "{UPSTREAM_KEY}"\n'
        '[models."a/b"]\nprovider = "fake"\nmodel = "upstream-b"\n',
        file="proxy.toml",
    )
    server = ProxyServer(config)
    server.start()
    try:
        # http.client: the test's own request must not go through the proxy
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = json.dumps({"model": "a/b", "messages": [{"role": "user", "content": "hi"}]})
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        status, body = reply.status, reply.read()
        conn.close()
    finally:
        server.stop(grace=1.0)
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
    assert status == 200, body
    assert proxy.seen[0][0] == f"POST {upstream.url}/v1/chat/completions HTTP/1.1"
    assert upstream.requests[-1].body["model"] == "upstream-b"


def test_a_socks_proxy_is_refused_with_a_reason() -> None:
    async def main() -> None:
        client = wire.Client()
        with pytest.raises(wire.ConnectError, match=r"proxy socks5:// is not supported"):
            await post(client, "https://localhost:1/v1/x", proxy="socks5://127.0.0.1:1080")
        await client.close()

    run(main())


def test_a_caller_giving_up_during_the_tunnel_closes_the_connection() -> None:
    closed = asyncio.Event()

    async def silent_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the CONNECT: never answered
        await reader.read()  # until the client hangs up
        closed.set()

    async def main() -> None:
        async with Server(silent_proxy) as via:
            client = wire.Client()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    post(client, "https://localhost:1/v1/x", proxy=f"http://127.0.0.1:{via.port}"),
                    0.3,
                )
            await asyncio.wait_for(closed.wait(), 5)
            await client.close()

    run(main())


def test_proxy_credentials_stay_out_of_reprs_and_errors() -> None:
    secret = "pr0xy-s3cret"
    encoded = base64.b64encode(f"u:{secret}".encode()).decode()
    proxy = f"http://u:{secret}@127.0.0.1:9"
    where = wire.target("https://api.example.com/v1/chat/completions", proxy)
    assert secret not in repr(where) and encoded not in repr(where)

    async def main() -> None:
        client = wire.Client()
        with pytest.raises(wire.ConnectError) as caught:
            await post(client, "https://api.example.com/v1/x", proxy=proxy)
        assert secret not in str(caught.value) and encoded not in str(caught.value)
        await client.close()

    run(main())
