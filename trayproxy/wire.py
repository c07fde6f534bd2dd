"""The HTTP/1.1 client that carries requests to providers.

Why not aiohttp's client: on the relay path it cost about 200 µs of CPU per request (a
general client builds URL objects, cookie jars, trace hooks, timers and payload wrappers per
request); this one costs about 40 µs, which is most of what trayproxy adds over a bare
pass-through (README "Performance"). It does only what a provider request needs:

- ``POST`` with a body of known length; answers framed by Content-Length, chunked, or the
  end of the connection, parsed by llhttp (the ``httptools`` binding uvicorn uses);
- keep-alive connections per origin, reused newest first, closed after ``KEEPALIVE_S`` idle;
  a reused connection that the provider closed before answering is retried once on a new one;
- TLS with the system's trust store, gzip/deflate answers decoded;
- HTTP proxies: plain-HTTP requests in absolute form, HTTPS ones through ``CONNECT``;
- back-pressure: reading from the provider pauses while the client is slower.

Errors are :class:`ConnectError` (no connection, TLS refused, proxy refused) and
:class:`WireError` (the answer broke off or is not HTTP). Keys travel only in headers and
are never part of an error message.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import zlib
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from trayproxy import __version__

KEEPALIVE_S = 15.0  # providers close idle connections too; reuse only fresher ones
HIGH_WATER = 256 * 1024  # answer bytes buffered before reading from the provider pauses
_SMALL_BODY = 64 * 1024  # bodies up to this size go out in the same write as the head
_USER_AGENT = f"trayproxy/{__version__}"


class WireError(Exception):
    """The provider's answer could not be had or read."""


class ConnectError(WireError):
    """No connection to the provider (refused, unresolvable, timed out, TLS, proxy)."""


@dataclass(frozen=True)
class Target:
    """Where the requests for one URL go, worked out once per URL and proxy."""

    # the pool key, the head and the tunnel request may hold the proxy's credentials: no repr
    key: tuple[str, str, int, str] = field(repr=False)  # connections are pooled by this
    host: str
    port: int
    secure: bool  # TLS to the provider
    head: str = field(repr=False)  # request line, Host, Proxy-Authorization for http via proxy
    via: tuple[str, int, bool] | None  # the proxy's host, port and whether it speaks TLS
    tunnel: bytes | None = field(repr=False)  # the CONNECT request, for HTTPS through a proxy


def target(url: str, proxy: str | None = None) -> Target:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    default_port = 443 if secure else 80
    port = parts.port or default_port
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default_port else f"{shown}:{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + parts.query
    via = None
    tunnel = None
    request_target = path
    extra = ""
    if proxy:
        pp = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if pp.scheme not in ("http", "https"):
            raise ConnectError(f"proxy {pp.scheme}:// is not supported (only http:// and https://)")
        proxy_tls = pp.scheme == "https"
        via = (pp.hostname or "", pp.port or (443 if proxy_tls else 80), proxy_tls)
        auth = ""
        if pp.username is not None:
            pair = f"{unquote(pp.username)}:{unquote(pp.password or '')}"
            auth = "Proxy-Authorization: Basic " + base64.b64encode(pair.encode()).decode()
            auth += "\r\n"
        if secure:
            where = f"{shown}:{port}"
            tunnel = f"CONNECT {where} HTTP/1.1\r\nHost: {where}\r\n{auth}\r\n".encode()
        else:
            request_target = f"http://{authority}{path}"
            extra = auth
    head = f"POST {request_target} HTTP/1.1\r\nHost: {authority}\r\n{extra}"
    key = (parts.scheme, host, port, proxy or "")
    return Target(key, host, port, secure, head, via, tunnel)


class Response:
    """A provider's answer: status and headers on arrival, the body read as it comes."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn: Connection | None = conn
        self._loop = loop
        self.status = 0
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self.started = loop.create_future()  # set when the status line and headers are in
        self.received = False  # any byte of an answer at all
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self.done = False
        self._error: WireError | None = None
        self._keep_alive = False
        self._until_close = False
        self._paused = False
        self._inflate: zlib._Decompress | None = None

    # -- fed by the connection

    def _head(self, status: int, headers: list[tuple[str, str]], keep_alive: bool) -> None:
        self.status = status
        fields = CIMultiDict(headers)
        self.headers = CIMultiDictProxy(fields)
        self._keep_alive = keep_alive
        framing = fields.get("Transfer-Encoding", "").lower()
        self._until_close = (
            "Content-Length" not in fields and "chunked" not in framing and status not in (204, 304)
        )
        encoding = fields.get("Content-Encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            self._fail(WireError(f"the answer uses an encoding trayproxy cannot read: {encoding}"))
        if not self.started.done():
            self.started.set_result(None)

    def _feed(self, data: bytes) -> None:
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error as exc:
                self._fail(WireError(f"the answer's compressed body is damaged: {exc}"))
                return
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.pause()
        self._wake()

    def _complete(self) -> None:
        if self._inflate is not None:
            tail = self._inflate.flush()
            if tail:
                self._chunks.append(tail)
                self._buffered += len(tail)
        self.done = True
        self._wake()

    def _fail(self, error: WireError) -> None:
        if self.done or self._error is not None:
            return
        self._error = error
        if not self.started.done():
            self.started.set_exception(error)
        self._wake()

    def _lost(self, exc: BaseException | None) -> None:
        if self.done:
            return
        if self.started.done() and self._until_close and exc is None and self._error is None:
            self._complete()  # an answer framed by the end of the connection
            return
        when = "in the middle of its answer" if self.received else "before answering"
        reason = f": {exc}" if exc else ""
        self._fail(WireError(f"the provider closed the connection {when}{reason}"))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- read by the relay

    async def readany(self) -> bytes:
        """What has arrived since the last read (waiting for something); b"" at the end."""
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self.done:
                return b""
            self._waiter = self._loop.create_future()
            await self._waiter
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self._conn is not None:
            self._paused = False
            self._conn.resume()
        return data

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool, or is closed."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self.done and self._keep_alive and self._error is None:
            if self._paused:
                conn.resume()
            conn.client.park(conn)
        else:
            conn.close()


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class Connection(asyncio.Protocol):
    """One keep-alive connection to a provider (or to a proxy, tunnelled to it)."""

    def __init__(self, client: Client, key: tuple[str, str, int, str]) -> None:
        self.client = client
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.answer: Response | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._interim = False
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_head = b""

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel_data(data)
            return
        answer = self.answer
        if answer is None or answer.done:  # bytes nobody asked for: do not trust this one
            self.close()
            return
        answer.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            answer._fail(WireError(f"the provider's answer is not valid HTTP ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(ConnectError("the proxy closed the connection"))
        if self.answer is not None:
            self.answer._lost(exc)
            self.answer = None
        self.client.forget(self)

    # -- llhttp

    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "replace")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the real answer follows
            self._interim = True
            return
        assert self.answer is not None
        self.answer._head(status, self._headers, self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.answer is not None and not self._interim:
            self.answer._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif self.answer is not None:
            self.answer._complete()

    # -- used by the client and the answer

    def send(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if len(body) <= _SMALL_BODY:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self.client.forget(self)

    async def open_tunnel(self, request: bytes) -> None:
        """Ask the proxy for a tunnel (``CONNECT``) and wait for its yes."""
        assert self.transport is not None
        self._tunnel = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        head = await self._tunnel
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[1].startswith("2"):
            raise ConnectError(f"the proxy refused the tunnel: {status_line[:200]}")

    def _tunnel_data(self, data: bytes) -> None:
        assert self._tunnel is not None
        self._tunnel_head += data
        end = self._tunnel_head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._tunnel_head) > 64 * 1024:
                self._tunnel.set_exception(ConnectError("the proxy's answer is too long"))
                self._tunnel = None
            return
        future, self._tunnel = self._tunnel, None
        if end + 4 != len(self._tunnel_head):
            future.set_exception(ConnectError("the proxy sent data before the tunnel opened"))
            return
        future.set_result(self._tunnel_head[:end])


class Client:
    """Pools connections per origin; ``post`` sends one request and returns its answer."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._ssl_loading: asyncio.Future[ssl.SSLContext] | None = None
        self._idle: dict[tuple[str, str, int, str], list[Connection]] = {}
        self._targets: dict[tuple[str, str | None], Target] = {}
        self._open: set[Connection] = set()

    async def tls(self) -> ssl.SSLContext:
        """The TLS settings, made on first use and in a worker thread: loading the system's
        trust store takes tens of milliseconds, which the event loop must not wait out."""
        if self._ssl is None:
            if self._ssl_loading is None:
                loop = asyncio.get_running_loop()
                self._ssl_loading = loop.run_in_executor(None, _default_tls)
            self._ssl = await asyncio.shield(self._ssl_loading)
        return self._ssl

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        proxy: str | None = None,
        connect_timeout: float = 10.0,
    ) -> Response:
        """Send ``body`` to ``url``; return once the status line and headers are in.

        ``headers`` are sent as given (names in lower case); Host, Content-Length and
        Accept-Encoding are added, and User-Agent and Accept when missing. The caller reads
        the answer and then calls :meth:`Response.release`.
        """
        where = self._targets.get((url, proxy))
        if where is None:
            if len(self._targets) > 1024:  # URLs come from the config: this is reloads
                self._targets.clear()
            where = self._targets[(url, proxy)] = target(url, proxy)
        head = _head(where.head, headers, len(body))
        loop = asyncio.get_running_loop()
        while True:
            conn = self._take(where.key, loop.time())
            if conn is None:
                conn = await self._connect(where, connect_timeout)
            answer = Response(conn, loop)
            conn.answer = answer
            try:
                conn.send(head, body)
                await answer.started
            except WireError:
                conn.close()
                if conn.reused and not answer.received:
                    continue  # the provider had closed this idle connection: a new one
                raise
            except BaseException:
                conn.close()
                raise
            return answer

    def _take(self, key: tuple[str, str, int, str], now: float) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                conn.reused = True
                return conn
            conn.close()
        return None

    async def _connect(self, where: Target, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        host, port, tls = where.via or (where.host, where.port, where.secure)
        conn: Connection | None = None

        def made() -> Connection:
            nonlocal conn
            conn = Connection(self, where.key)
            return conn

        async def connect() -> None:
            await loop.create_connection(
                made,
                host,
                port,
                ssl=await self.tls() if tls else None,
                server_hostname=host if tls else None,
            )
            assert conn is not None
            if where.tunnel is not None:
                await conn.open_tunnel(where.tunnel)
                assert conn.transport is not None
                conn.transport = await loop.start_tls(  # type: ignore[assignment]
                    conn.transport, conn, await self.tls(), server_hostname=where.host
                )

        try:
            await asyncio.wait_for(connect(), timeout)
        except BaseException as exc:  # incl. the caller's own timeout: never leave it open
            if conn is not None:
                conn.close()
            if isinstance(exc, asyncio.TimeoutError):
                why = f"no connection within {timeout:g} s (connect_timeout)"
                raise ConnectError(why) from None
            if isinstance(exc, (OSError, ValueError)):  # refused, unresolvable, TLS (SSLError)
                raise ConnectError(_reason(exc)) from None
            raise
        assert conn is not None
        self._open.add(conn)
        return conn

    def park(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.answer = None
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def idle_connections(self) -> int:
        return sum(len(v) for v in self._idle.values())

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


def _head(start: str, headers: dict[str, str], length: int) -> bytes:
    lines = [start]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise WireError(f"header {name!r} cannot be sent: it holds a line break or colon")
        lines.append(f"{name}: {value}\r\n")
    if "user-agent" not in headers:
        lines.append(f"User-Agent: {_USER_AGENT}\r\n")
    if "accept" not in headers:
        lines.append("Accept: */*\r\n")
    lines.append(f"Accept-Encoding: gzip, deflate\r\nContent-Length: {length}\r\n\r\n")
    return "".join(lines).encode("utf-8")


def _default_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    text = str(exc)
    return text or type(exc).__name__
