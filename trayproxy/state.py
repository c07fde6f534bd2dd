"""What the running proxy app shares between requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from trayproxy.config import Config
from trayproxy.logbook import Logbook

# A desktop action the page may trigger ("reload", "open_config"...). It runs in a worker
# thread and returns (ok, message) for the user.
Action = Callable[[], tuple[bool, str]]


@dataclass
class ProxyState:
    """Touched only on the loop thread. ``config`` is replaced whole, never mutated."""

    config: Config
    logbook: Logbook
    session: aiohttp.ClientSession | None = None
    started: float = field(default_factory=time.time)
    base_url: str = ""
    actions: dict[str, Action] = field(default_factory=dict)


STATE = web.AppKey("trayproxy_state", ProxyState)
