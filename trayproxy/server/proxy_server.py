"""``ProxyServer``: runs the aiohttp app on an asyncio loop in a background thread.

Only the loop thread touches the app's state. Other threads (the CLI's main thread, the
tray) use the thread-safe methods ``start``, ``apply``, ``stop``, each with a bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from aiohttp import web

from trayproxy.config.model import Config
from trayproxy.core.hosts import format_host
from trayproxy.core.secret import redactor
from trayproxy.core.threads import leave_signals_to_the_main_thread
from trayproxy.gateway.errors import Failure
from trayproxy.gateway.state import Action, ProxyState
from trayproxy.records.history import History
from trayproxy.records.logbook import Logbook
from trayproxy.server import parse_errors
from trayproxy.server.app import create_app

log = logging.getLogger("trayproxy.server")

_IN_USE = {errno.EADDRINUSE, 48, 10048}


_AFTER_DRAIN = 0.2  # seconds aiohttp waits for handlers at cleanup, after _drain


class ServerError(RuntimeError):
    """The proxy could not start; the message is meant for the user."""


class PortInUseError(ServerError):
    pass


class ProxyServer:
    def __init__(
        self,
        config: Config,
        *,
        logbook: Logbook | None = None,
        actions: Mapping[str, Action] | None = None,
        autostart_enabled: Callable[[], bool] | None = None,
        history: History | None = None,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self.history = history
        self._notify = notify
        self._config = config
        self._actions = dict(actions or {})
        self._autostart_enabled = autostart_enabled
        self.logbook = logbook or Logbook(config.server.log_size)
        self.logbook.redact = redactor(config.secret_values())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state: ProxyState | None = None
        self._runner: web.AppRunner | None = None
        self._stopped: asyncio.Event | None = None
        self.host = config.server.host
        self.port = config.server.port

    # ------------------------------------------------------------ thread-safe API

    @property
    def config(self) -> Config:
        return self._config

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def root_url(self) -> str:
        return f"http://{format_host(self.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    @property
    def in_flight(self) -> int:
        """Requests being answered now (each files its record before it stops counting)."""
        return self._state.active if self._state is not None else 0

    def start(self, timeout: float = 15.0) -> None:
        """Bind and start serving. Raises PortInUseError / ServerError with a clear message."""
        if self._thread is not None:
            raise ServerError("the proxy is already started")
        check_exposure(self.host, self._config)
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="trayproxy-loop", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout)
        except BaseException:
            self._thread.join(timeout)
            self._thread = None
            raise

    def apply(self, config: Config, timeout: float = 5.0) -> None:
        """Publish a new config to the running proxy: new requests use it, running ones don't.

        The host and port are fixed while running; a change needs ``restart``.
        """
        self._config = config
        loop = self._loop
        if loop is None or self._state is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._apply(config), loop)
        fut.result(timeout)

    def rebind(
        self, host: str, port: int, timeout: float = 10.0, config: Config | None = None
    ) -> None:
        """Move to another address without dropping requests in flight on the old one.

        The new socket is bound first; if that fails (PortInUseError, ServerError) nothing
        changes. On success the old listener closes; its open connections finish normally.
        """
        loop = self._loop
        if loop is None or self._runner is None:
            raise ServerError("the proxy is not running")
        check_exposure(host, config or self._config)
        asyncio.run_coroutine_threadsafe(self._rebind(host, port), loop).result(timeout)

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, give in-flight requests up to ``grace`` seconds, then close."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._grace = grace
        if self._stopped is not None:
            loop.call_soon_threadsafe(self._stopped.set)
        thread.join(grace + 10)
        self._thread = None

    # ------------------------------------------------------------ loop thread

    def _tell(self, title: str, message: str) -> None:
        """Something the user must hear once (a key set aside, the budget passed): the
        desktop's notification, shown from a worker thread (never the loop's), else the
        log."""
        notify = self._notify
        if notify is None:
            log.warning("%s: %s", title, message)
            return
        threading.Thread(
            target=notify, args=(title, message), name="trayproxy-notice", daemon=True
        ).start()

    async def _apply(self, config: Config) -> None:
        assert self._state is not None
        self._state.config = config
        self._state.keys.config_changed(config)  # rejected keys get another chance
        self._state.prices.forget()  # price lists are read again when next used
        self._state.forget_proxies()  # the OS proxy settings may have changed too
        self.logbook.resize(config.server.log_size)
        self.logbook.redact = redactor(config.secret_values())

    async def _rebind(self, host: str, port: int) -> None:
        assert self._runner is not None and self._state is not None
        sock = _bind(host, port)
        site = web.SockSite(self._runner, sock)
        old = list(self._runner.sites)
        await site.start()
        self.host, self.port = host, sock.getsockname()[1]
        self._state.base_url = self.base_url
        for previous in old:
            await previous.stop()
        log.info("now serving %s", self.base_url)

    @staticmethod
    async def _drain(runner: web.AppRunner, state: ProxyState, grace: float) -> None:
        """Stop listening, let requests in flight finish for up to ``grace`` seconds, then
        end the streams still open with an in-stream error (never a silent cut)."""
        state.stopping = True
        for site in list(runner.sites):
            await site.stop()
        if state.active:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(state.idle.wait(), grace)
        cut = Failure(
            503, "trayproxy is shutting down; this answer was cut short.", "proxy_shutting_down"
        )
        for out, (draft, said) in list(state.streams.items()):
            draft.error = "trayproxy stopped while streaming"
            with contextlib.suppress(Exception):
                await asyncio.wait_for(out.write(said(cut)), 0.5)
                await asyncio.wait_for(out.write_eof(), 0.5)

    def _run(self, ready: Future[None]) -> None:
        leave_signals_to_the_main_thread()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # reported through `ready` when it happens at start
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.exception("the proxy loop stopped with an error")
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _serve(self, ready: Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._grace = 5.0
        self._state = ProxyState(
            config=self._config,
            logbook=self.logbook,
            actions=self._actions,
            autostart_enabled=self._autostart_enabled,
            history=self.history,
            notify=self._tell,
        )
        app = create_app(self._state)
        runner = web.AppRunner(
            app,
            handler_cancellation=True,
            access_log=None,
            # _drain has given requests their grace already; what remains is cancelled soon
            shutdown_timeout=_AFTER_DRAIN,
        )
        await runner.setup()
        parse_errors.install(runner)
        self._runner = runner
        try:
            sock = _bind(self.host, self.port)
            self.port = sock.getsockname()[1]
            self._state.base_url = self.base_url
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        ready.set_result(None)
        log.debug("listening on %s", self.base_url)
        await self._stopped.wait()
        await self._drain(runner, self._state, self._grace)
        await runner.cleanup()
        log.info("stopped")


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def check_exposure(host: str, config: Config) -> None:
    """Refuse to listen beyond this machine without a client token."""
    if host.lower() in LOOPBACK_HOSTS or host.startswith("127."):
        return
    if config.server.token.secret is None:
        raise ServerError(
            f"Listening on {host} would let other machines use your provider keys. Set "
            '[server] token = "env:NAME" (a long random value your clients send as their API '
            "key), or listen on 127.0.0.1."
        )


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerError(f"Cannot listen on {host!r}: {exc.strerror}") from None
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if hasattr(socket, "SO_REUSEADDR") and not _is_windows():
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in _IN_USE:
            raise PortInUseError(
                f"Port {port} on {host} is used by another program. Stop it, or choose another "
                "port with --port or [server] port in config.toml."
            ) from None
        raise ServerError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _is_windows() -> bool:
    return sys.platform == "win32"
