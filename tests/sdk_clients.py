"""The real SDK clients tests drive an in-process trayproxy with: no retries of their own
(so that a test sees what trayproxy did), a bounded wait."""

from __future__ import annotations

import anthropic
import openai

from trayproxy.server.proxy_server import ProxyServer


def openai_client(server: ProxyServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=30)


def anthropic_client(server: ProxyServer, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.root_url, api_key=key, max_retries=0, timeout=30)
