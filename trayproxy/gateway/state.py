"""What the running proxy app shares between requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from trayproxy.config.model import Config
from trayproxy.gateway.errors import Failure
from trayproxy.gateway.key_pool import KeyPool
from trayproxy.gateway.prices import DailySpend, PriceBook
from trayproxy.gateway.upstream import system_proxy
from trayproxy.providers.reasoning import ReasoningMemory
from trayproxy.records.history import History
from trayproxy.records.logbook import Logbook, RecordDraft

# A desktop action the page may trigger ("reload", "open_config"...). It runs in a worker
# thread and returns (ok, message) for the user.
Action = Callable[[], tuple[bool, str]]


@dataclass
class ProxyState:
    """Touched only on the loop thread. ``config`` is replaced whole, never mutated."""

    config: Config
    logbook: Logbook
    # carries relayed requests to providers, and the page's mapping check (doctor)
    session: aiohttp.ClientSession | None = None
    started: float = field(default_factory=time.time)
    base_url: str = ""
    history: History | None = None
    actions: dict[str, Action] = field(default_factory=dict)
    # whether start at login is on, asked of the desktop (which registers it) for the page
    autostart_enabled: Callable[[], bool] | None = None
    stopping: bool = False
    active: int = 0  # relayed requests in flight
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set when active drops to 0
    # streams being written now, so that a shutdown can close them with an error event
    # (and how a failure is said in its client's protocol)
    streams: dict[web.StreamResponse, tuple[RecordDraft, Callable[[Failure], bytes]]] = field(
        default_factory=dict
    )
    _proxies: dict[str, str | None] = field(default_factory=dict)
    # each provider key's state: ready, cooling down after a 429, set aside after a 401
    keys: KeyPool = field(default_factory=KeyPool)
    # prices read from providers' lists; what today cost so far
    prices: PriceBook = field(default_factory=PriceBook)
    spend: DailySpend = field(default_factory=DailySpend)
    # tells the user something once (a desktop notification; the app sets it): title, text
    notify: Callable[[str, str], None] | None = None
    # reasoning of recent tool-call turns, for providers that want it back (dialect.py)
    reasoning: ReasoningMemory = field(default_factory=ReasoningMemory)

    def redact(self, text: str) -> str:
        return self.logbook.redact(text)

    def redact_bytes(self, data: bytes) -> bytes:
        """An upstream error body, with any key it echoes hidden (bodies are small)."""
        text = data.decode("utf-8", "replace")
        hidden = self.logbook.redact(text)
        return data if hidden == text else hidden.encode("utf-8")

    def proxy_for(self, url: str) -> str | None:
        """The HTTP(S) proxy the OS or environment asks for ``url`` (cached per URL until the
        config is applied again: the URLs are the config's, so they are few, and a request
        pays one lookup; a reload looks the settings up anew).

        aiohttp's ``trust_env`` would also read ``~/.netrc`` and send its credentials to
        providers; this reads only the proxy settings, as urllib does.
        """
        try:
            return self._proxies[url]
        except KeyError:
            proxy = self._proxies[url] = system_proxy(url)
            return proxy

    def forget_proxies(self) -> None:
        self._proxies.clear()


STATE = web.AppKey("trayproxy_state", ProxyState)
