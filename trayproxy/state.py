"""What the running proxy app shares between requests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from trayproxy.config import Config
from trayproxy.logbook import Logbook


@dataclass
class ProxyState:
    """Touched only on the loop thread. ``config`` is replaced whole, never mutated."""

    config: Config
    logbook: Logbook
    session: aiohttp.ClientSession | None = None
    started: float = field(default_factory=time.time)
    base_url: str = ""


STATE = web.AppKey("trayproxy_state", ProxyState)
