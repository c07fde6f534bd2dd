"""A provider that misbehaves on cue: a raw-socket HTTP/1.1 server on 127.0.0.1, port 0.

It runs in a thread with an event loop of its own, parses every request strictly (request
line, header syntax, ``Host``, a ``Content-Length`` body) and counts what it received. Each
complete request goes to ``provider.handler``, looked up afresh for every request, so a test
can switch the behaviour even for the keep-alive connections trayproxy already holds. A
handler writes whatever bytes it likes (answers glued together, endless headers, gzip bombs)
and returns whether the connection stays open for another request.

    with HostileProvider(answer(200, b'{"ok":true}')) as fake:
        ...  # point a provider's base_url at fake.base_url
        assert fake.count("POST") == 1

``stop()`` (or leaving the ``with``) cancels every handler still running and closes every
connection, so nothing is left behind for the next test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

_REQUEST_LINE = re.compile(r"([A-Z]+) (/[^ ]*) HTTP/1\.1")
_HEADER_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")
_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024


class ProtocolError(Exception):
    """The client sent something that is not a well-formed HTTP/1.1 request."""


@dataclass(frozen=True)
class Request:
    """One complete request, as the provider received it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    connection: int  # which connection (0, 1, ...) it came on
    number: int  # its place among all requests (0, 1, ...)
    at: float  # time.monotonic() when it was complete

    def json(self) -> Any:
        return json.loads(self.body)


class Conn:
    """One accepted connection, as a handler sees it."""

    def __init__(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.served = 0  # requests completed on this connection
        self.peer_closed = False  # the other side closed (EOF or reset)

    async def send(self, data: bytes) -> None:
        """Write and wait until the socket takes it (the peer's back-pressure applies)."""
        self.writer.write(data)
        await self.writer.drain()

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """The next request, strictly parsed; None when the peer closed between requests."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ProtocolError(f"closed inside a request head: {exc.partial!r}") from None
            self.peer_closed = True
            return None
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("request head larger than 64 KiB") from exc
        try:
            text = head[:-4].decode("ascii")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"non-ASCII request head: {head[:200]!r}") from exc
        lines = text.split("\r\n")
        match = _REQUEST_LINE.fullmatch(lines[0])
        if match is None:
            raise ProtocolError(f"bad request line: {lines[0]!r}")
        method, path = match.groups()
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if "\n" in line or "\r" in line:
                raise ProtocolError(f"bare CR or LF in a header line: {line!r}")
            fields = _HEADER_LINE.fullmatch(line)
            if fields is None:  # also refuses obsolete line folding (a leading space)
                raise ProtocolError(f"bad header line: {line!r}")
            name, value = fields.group(1).lower(), fields.group(2)
            if name in headers and name in ("host", "content-length", "transfer-encoding"):
                raise ProtocolError(f"header {name} sent twice")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "host" not in headers:
            raise ProtocolError("no Host header")
        if "transfer-encoding" in headers:
            raise ProtocolError("a request body must have a Content-Length, not chunked")
        length = headers.get("content-length")
        if length is None:
            if method in ("POST", "PUT", "PATCH"):
                raise ProtocolError(f"{method} without Content-Length")
            size = 0
        elif not length.isdigit() or int(length) > _MAX_BODY:
            raise ProtocolError(f"bad Content-Length: {length!r}")
        else:
            size = int(length)
        try:
            body = await self.reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError(f"body cut short: {len(exc.partial)} of {size} bytes") from exc
        return method, path, headers, body

    async def wait_for_peer_close(self, timeout: float = 10.0) -> None:
        """Hold the connection, reading and discarding, until the peer closes or ``timeout``."""

        async def drain() -> None:
            while await self.reader.read(65536):
                pass
            self.peer_closed = True

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain(), timeout)

    def close(self) -> None:
        """Close the connection gracefully (the peer reads EOF)."""
        self.writer.close()

    def abort(self) -> None:
        """Reset the connection (the peer gets a connection reset)."""
        self.writer.transport.abort()


# A handler answers one request. It returns True to keep the connection for another request.
Handler = Callable[[Conn, Request], Awaitable[bool]]


class HostileProvider:
    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler  # consulted for every request: switch it at any time
        self.host = host
        self.port = port
        self.requests: list[Request] = []
        self.protocol_errors: list[str] = []  # malformed requests (answered 400, closed)
        self.failures: list[str] = []  # handlers that raised: a bug in the test
        self.accepted = 0
        self.closed = 0  # connections that ended, whoever closed them
        self.peer_closed = 0  # connections the client side closed (EOF or reset)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> HostileProvider:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="hostile-provider")
        self._thread.daemon = True
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), loop)
        future.result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        assert not thread.is_alive(), "the hostile provider's thread did not end"
        loop.close()
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):  # handlers still writing, holding or waiting
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def __enter__(self) -> HostileProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ what a test reads

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def open(self) -> int:
        """Connections accepted and not yet closed."""
        return self.accepted - self.closed

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many complete requests arrived, optionally of one method and path."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            )

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # ------------------------------------------------------------ serving

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        index = self.accepted
        self.accepted += 1
        conn = Conn(index, reader, writer)
        cancelled = False
        try:
            await self._serve(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.peer_closed = True
        except asyncio.CancelledError:
            cancelled = True  # stop(): the test is over
        except ProtocolError as exc:
            self.protocol_errors.append(str(exc))
            with contextlib.suppress(Exception):
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.discard(task)
            if cancelled:
                writer.transport.abort()  # do not flush what a flood left in the buffer
            else:
                writer.close()
            self.peer_closed += conn.peer_closed
            self.closed += 1

    async def _serve(self, conn: Conn) -> None:
        while True:
            parsed = await conn.read_request()
            if parsed is None:
                return
            method, path, headers, body = parsed
            with self._lock:
                request = Request(
                    method, path, headers, body, conn.index, len(self.requests), time.monotonic()
                )
                self.requests.append(request)
            conn.served += 1
            keep = await self.handler(conn, request)
            if not keep or conn.writer.is_closing():
                return


# ---------------------------------------------------------------- ready-made handlers


def head(
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    *,
    reason: str | None = None,
    length: int | None = None,
) -> bytes:
    """A status line and headers, with ``Content-Length`` when ``length`` is given."""
    reasons = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}
    reasons |= {101: "Switching Protocols", 503: "Service Unavailable", 400: "Bad Request"}
    lines = [f"HTTP/1.1 {status} {reason or reasons.get(status, 'Whatever')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(
    status: int = 200,
    body: bytes | Callable[[Request], bytes] = b"",
    *,
    content_type: str | None = "application/json",
    headers: Iterable[tuple[str, str]] = (),
    delay: float = 0.0,
    close: bool = False,
) -> Handler:
    """A well-formed answer framed by ``Content-Length``, after ``delay`` seconds."""
    extra = list(headers)
    if content_type:
        extra.insert(0, ("Content-Type", content_type))
    if close:
        extra.append(("Connection", "close"))

    async def handle(conn: Conn, request: Request) -> bool:
        if delay:
            await asyncio.sleep(delay)
        data = body(request) if callable(body) else body
        await conn.send(head(status, extra, length=len(data)) + data)
        return not close

    return handle


async def drop(conn: Conn, request: Request) -> bool:
    """Read the whole request, then close the connection without a byte of answer."""
    conn.close()
    return False


def raw(data: bytes, *, then: str = "close") -> Handler:
    """Send ``data`` as is, then ``"close"``, ``"keep"`` the connection, or ``"hold"`` it
    open (reading nothing more) until the peer closes it."""

    async def handle(conn: Conn, request: Request) -> bool:
        await conn.send(data)
        if then == "hold":
            await conn.wait_for_peer_close()
            return False
        return then == "keep"

    return handle


def by_connection(*handlers: Handler) -> Handler:
    """Connection 0 gets the first handler, connection 1 the second...; later ones the last."""

    async def handle(conn: Conn, request: Request) -> bool:
        return await handlers[min(conn.index, len(handlers) - 1)](conn, request)

    return handle
