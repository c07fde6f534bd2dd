"""Refuse what a web page could make the user's browser send to 127.0.0.1.

Any site the user visits can send requests to a local port: a ``text/plain`` POST needs no
CORS preflight, and DNS rebinding makes a foreign name resolve to 127.0.0.1. So every
request must name this server in ``Host`` (a loopback name or a configured one, with the
right port), a browser ``Origin`` must be this server or one listed in
``[server] allowed_origins``, and JSON endpoints take only ``Content-Type: application/json``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from trayproxy.core.secret import Secret
from trayproxy.gateway.errors import error_response
from trayproxy.gateway.state import STATE

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_CORS_METHODS = "GET, POST, OPTIONS"


def split_host(value: str) -> tuple[str, int | None] | None:
    """``'[::1]:8000'`` -> ``('::1', 8000)``; None when it is not a host[:port]."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = value.partition(":")
    if not name:
        return None
    if not port_text:
        return name, None
    if not port_text.isdigit():
        return None
    return name, int(port_text)


def host_allowed(host: str | None, port: int, names: Iterable[str]) -> bool:
    if not host:
        return False
    parsed = split_host(host)
    if parsed is None:
        return False
    name, given = parsed
    return name in names and (given if given is not None else 80) == port


def origin_allowed(origin: str, port: int, names: Iterable[str], allowed: Iterable[str]) -> bool:
    if origin in allowed:
        return True
    scheme, sep, rest = origin.partition("://")
    if scheme != "http" or not sep or "/" in rest:
        return False  # covers "null" and file:// pages
    return host_allowed(rest, port, names)


def local_port(request: web.Request) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else -1


_names_for: tuple[Any, frozenset[str]] = (None, frozenset())  # (server settings, names)


def _host_names(server: Any) -> frozenset[str]:
    """The names requests may address trayproxy by, worked out once per config (a config
    is replaced whole on reload, never changed). The cache is one tuple, read and replaced
    whole, so servers in other threads cannot mix their entries."""
    global _names_for
    cached, names = _names_for
    if cached is not server:
        names = LOOPBACK_NAMES | {server.host.lower(), *(h.lower() for h in server.allowed_hosts)}
        _names_for = (server, names)
    return names


async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """The checks every request passes before ``handler`` (called by proxy.front)."""
    state = request.app[STATE]
    server = state.config.server
    names = _host_names(server)
    port = local_port(request)
    if not host_allowed(request.headers.get("Host"), port, names):
        return error_response(
            403,
            f"Host {request.headers.get('Host', '')!r} is not allowed. trayproxy answers only "
            "requests addressed to it by a loopback name (add others to [server] "
            "allowed_hosts).",
            code="host_not_allowed",
        )
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, port, names, server.allowed_origins):
        return error_response(
            403,
            f"Requests from web pages at {origin!r} are not allowed (add the origin to "
            "[server] allowed_origins to let a browser app use trayproxy).",
            code="origin_not_allowed",
        )
    if request.method == "OPTIONS":
        if origin is None:
            raise web.HTTPMethodNotAllowed("OPTIONS", ["GET", "POST"])
        return _preflight(request, origin)
    token = server.token.secret
    if token is not None and not _open_path(request.path) and not _has_token(request, token):
        return error_response(
            401,
            "trayproxy needs its client token: send it as the API key "
            "(Authorization: Bearer <token>) — see [server] token in config.toml.",
            code="invalid_api_key",
        )
    if request.method == "POST" and request.content_type != "application/json":
        return error_response(
            415,
            "trayproxy accepts only JSON: send Content-Type: application/json.",
            code="unsupported_media_type",
        )
    response = await handler(request)
    if origin is not None and origin in server.allowed_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


# The page's HTML, script and style carry no data: the page reads the token from its URL
# fragment (never sent to the server) and sends it with every API call.
_OPEN_PATHS = ("/_trayproxy/static/",)


def _open_path(path: str) -> bool:
    return path in ("/_trayproxy", "/_trayproxy/") or path.startswith(_OPEN_PATHS)


def _has_token(request: web.Request, token: Secret) -> bool:
    expected = token.reveal().encode()
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    candidates = [request.headers.get("x-api-key", "")]
    if scheme.lower() == "bearer":
        candidates.append(value.strip())
    # compare every candidate, in constant time each
    return any([hmac.compare_digest(c.encode(), expected) for c in candidates])


def _preflight(request: web.Request, origin: str) -> web.Response:
    wanted = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": _CORS_METHODS,
            "Access-Control-Allow-Headers": wanted or "Content-Type, Authorization",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )
