"""Build the upstream request from a route: URL, headers, key, rewritten body. Pure."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from trayproxy.config.model import KeyRef, Provider
from trayproxy.core import jsonbody
from trayproxy.routing.resolve import Route

# Client headers that may travel upstream. Everything else is dropped: credentials, cookies,
# hop-by-hop headers, proxy headers, and client fingerprinting.
FORWARDED_REQUEST_HEADERS = frozenset({"accept", "user-agent", "openai-beta"})

CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})

# Upstream response headers that must not be passed to the client.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {
    "content-length",  # recomputed by the server
    "content-encoding",  # aiohttp decodes gzip/deflate/br before anything reads the body
    "set-cookie",  # provider cookies mean nothing on 127.0.0.1
    "server",
    "date",
}


@dataclass(frozen=True)
class UpstreamRequest:
    url: str
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)  # holds the provider key: never log it
    removed_headers: tuple[str, ...] = ()
    added_headers: tuple[str, ...] = ()

    @property
    def rewrites(self) -> tuple[str, ...]:
        notes = []
        if self.removed_headers:
            notes.append("removed headers: " + ", ".join(self.removed_headers))
        if self.added_headers:
            notes.append("added headers: " + ", ".join(self.added_headers))
        return tuple(notes)


# Body fields some gateways honour to pick the upstream or its key. trayproxy never does:
# a request that carries one is refused rather than silently forwarded.
FORBIDDEN_FIELDS = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "custom_llm_provider"}
)


def forbidden_field(body: dict[str, Any]) -> str | None:
    """The first forbidden field at the top level or inside ``extra_body`` (any depth)."""
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        prefix, obj = stack.pop()
        for key, value in obj.items():
            if key.lower() in FORBIDDEN_FIELDS:
                return prefix + key
            if key == "extra_body" and isinstance(value, dict):
                stack.append((f"{prefix}{key}.", value))
    return None


class MissingKeyError(RuntimeError):
    def __init__(self, provider: str, source: str, header: str | None = None) -> None:
        self.provider = provider
        self.source = source
        what = f"value for header {header}" if header else "API key"
        store = f"trayproxy key set {provider}"
        if source.startswith("keyring:"):
            where = (
                f"the OS keychain has no entry {source[8:]!r}. Store it (trayproxy key set "
                f"{source[8:]}, or the page's Keys panel), then Reload mappings"
            )
        elif source.startswith("auto:"):
            where = (
                f"[providers.{provider}] has no api_key line, the OS keychain has no entry "
                f"{provider!r} and {source[5:]} is not set. Store the key ({store}, or the "
                "page's Keys panel), then Reload mappings; for a provider that takes no key, "
                'write api_key = ""'
            )
        else:
            where = (
                f"the environment variable {source.removeprefix('env:')} is not set where "
                f"trayproxy was started (an app started from the desktop does not see your "
                f"shell's exports). Store the key in the OS keychain instead ({store}) and "
                "remove the api_key line, or set the variable and restart trayproxy"
            )
        super().__init__(f"trayproxy has no {what} for provider '{provider}': {where}.")


def system_proxy(url: str) -> str | None:
    """The HTTP(S) proxy the OS or environment sets for ``url``, as urllib reads it."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        proxy = None
    if proxy and "://" not in proxy:  # HTTPS_PROXY=proxy.corp:3128 means http:// to it
        proxy = "http://" + proxy
    return proxy or None


def endpoint_url(base_url: str, endpoint: str) -> str:
    return f"{base_url}/{endpoint}"


def encode_body(body: dict[str, Any]) -> bytes:
    return jsonbody.dumps(body)


def provider_headers(provider: Provider, key: KeyRef | None = None) -> dict[str, str]:
    """The provider's key (``key``, one of its ``api_keys``, else its ``api_key``) and extra
    headers, revealed. Raises :class:`MissingKeyError`."""
    chosen = provider.api_key if key is None else key
    if chosen.missing:
        raise MissingKeyError(provider.name, chosen.source)
    headers: dict[str, str] = {}
    for name, ref in provider.headers:
        if ref.secret is None:
            raise MissingKeyError(provider.name, ref.source, header=name)
        headers[name.lower()] = ref.secret.reveal()
    if provider.needs_key:  # no api_key line and no key found: said now, not as its 401
        raise MissingKeyError(provider.name, provider.api_key.source)
    if chosen.secret:
        headers["authorization"] = "Bearer " + chosen.secret.reveal()
    return headers


def build(
    route: Route,
    endpoint: str,
    client_headers: Iterable[tuple[str, str]],
    body: dict[str, Any],
    *,
    url: str | None = None,
    forwarded: Mapping[str, str] | None = None,
    key_header: str = "authorization",
    key: KeyRef | None = None,
) -> UpstreamRequest:
    """The request to send upstream. ``body`` is not modified. ``url`` replaces the one made
    from the provider's base URL and ``endpoint``; ``forwarded`` adds client headers beyond
    the allowlist (Anthropic's, for a provider that speaks Messages); ``key_header`` is
    ``"x-api-key"`` for one that wants the key there rather than as a bearer token."""
    provider = route.provider
    headers: dict[str, str] = {}
    removed: list[str] = []
    for name, value in client_headers:
        lower = name.lower()
        if lower in FORWARDED_REQUEST_HEADERS:
            headers[lower] = value
        elif lower in CREDENTIAL_HEADERS and lower not in removed:
            removed.append(lower)
    headers.update(forwarded or {})
    headers["content-type"] = "application/json"
    auth = provider_headers(provider, key)
    if key_header == "x-api-key" and "authorization" in auth:
        auth["x-api-key"] = auth.pop("authorization").removeprefix("Bearer ")
    headers.update(auth)
    added = list(auth)
    out = dict(body)
    out["model"] = route.upstream_model
    return UpstreamRequest(
        url=url or endpoint_url(provider.base_url, endpoint),
        body=encode_body(out),
        headers=headers,
        removed_headers=tuple(removed),
        added_headers=tuple(added),
    )


# A character that a header value must not carry (tab is allowed). aiohttp's client reads
# such values; its server refuses to write them, so they are dropped here.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def response_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream response headers the client may see.

    Drops hop-by-hop headers (and any that ``Connection`` names), framing and encoding
    (recomputed here), cookies, the provider's CORS grants (trayproxy decides those), and
    any header holding a control character.
    """
    items = list(upstream)
    named = {
        token.strip().lower()
        for k, v in items
        if k.lower() == "connection"
        for token in v.split(",")
    }
    return [
        (k, v)
        for k, v in items
        if (low := k.lower()) not in DROPPED_RESPONSE_HEADERS
        and low not in named
        and not low.startswith("access-control-")
        and not _UNSENDABLE.search(v)
    ]
