"""The page's Keys panel: where each provider's key comes from and which providers lack one
(never a key), and storing a key in the OS keychain. Write-only: nothing here sends a stored
key back, and the key is kept in no record or log."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from trayproxy.config import keys
from trayproxy.config.model import Provider
from trayproxy.gateway.errors import error_response
from trayproxy.gateway.state import STATE
from trayproxy.page.ui import page_post_refused

MAX_BODY_BYTES = 16 * 1024  # a key is a few hundred bytes at most


def keychain_entry(provider: Provider) -> str | None:
    """The keychain entry the config reads this provider's key from, or None when its key
    comes from elsewhere (an environment variable, config.toml, or no key at all)."""
    if provider.api_keys:  # several: each is stored by its own name (the note says how)
        return None
    source = provider.api_key.source
    if provider.api_key.automatic or source.startswith("auto:"):
        return provider.name  # no api_key line: the entry named after the provider, first
    if source.startswith("keyring:"):
        return source.removeprefix("keyring:")
    return None


def _elsewhere(provider: Provider) -> str:
    source, name = provider.api_key.source, provider.name
    if provider.api_keys:
        refs = [key.ref.source for key in provider.api_keys]
        entries = [ref[8:] for ref in refs if ref.startswith("keyring:")]
        how = f" Store each keychain one with: trayproxy key set {entries[0]}" if entries else ""
        return f"[providers.{name}] has several keys (api_keys).{how}"
    if source == "none":
        where = 'api_key = "" says it takes no key'
    elif source == "literal":
        where = "config.toml holds its key"
    else:
        where = f"config.toml reads its key from ${source.removeprefix('env:')}"
    return (
        f"[providers.{name}]: {where}. To keep its key in the OS keychain, remove that "
        f'api_key line (or write api_key = "keyring:{name}") and store it here.'
    )


def _key_from(provider: Provider) -> str:
    if provider.api_keys:  # each is listed by label with its state
        return f"{len(provider.api_keys)} keys (api_keys), {provider.key_strategy}"
    return provider.api_key.describe()


def _state(provider: Provider, keys: list[dict[str, object]]) -> str:
    if provider.needs_key:
        return "needs a key"
    if len(keys) > 1:
        ready = sum(key["state"] == "ready" for key in keys)
        return f"{ready} of {len(keys)} keys ready"
    keys = [key.ref.secret for key in provider.keys]
    if not any(keys) and not any(r.secret for _, r in provider.headers):
        return "no key needed"
    return "ok"


async def list_keys(request: web.Request) -> web.Response:
    """GET /_trayproxy/api/keys: each provider, where its key comes from, whether it needs
    one, and each of its keys by label: ready, cooling down until when, rejected, missing."""
    state = request.app[STATE]
    config = state.config
    labelled = state.keys.snapshot(config.providers)
    return web.json_response(
        {
            "providers": [
                {
                    "name": name,
                    "base_url": p.base_url,
                    "key": _key_from(p),
                    "keys": labelled.get(name, []),
                    "needs_key": p.needs_key,
                    "state": _state(p, labelled.get(name, [])),
                    "keychain_entry": keychain_entry(p),
                    "note": None if keychain_entry(p) else _elsewhere(p),
                }
                for name, p in sorted(config.providers.items())
            ]
        }
    )


async def store_key(request: web.Request) -> web.Response:
    """POST /_trayproxy/api/keys/{provider} ``{"key": "..."}``: into the OS keychain, then
    the mappings are read again so the key is used at once."""
    refused = page_post_refused(request, "key changes")
    if refused is not None:
        return refused
    if request.content_length is None or request.content_length > MAX_BODY_BYTES:
        return error_response(413, "A key is sent as a small JSON body.", code="request_too_large")
    state = request.app[STATE]
    name = request.match_info["provider"]
    provider = state.config.providers.get(name)
    if provider is None:
        known = ", ".join(sorted(state.config.providers)) or "none"
        return error_response(404, f"No provider {name!r} (known: {known}).", code="not_found")
    try:
        value = json.loads(await request.read()).get("key")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value.strip():
        return error_response(
            400, 'Send {"key": "..."} with the key.', code="invalid_key", param="key"
        )
    entry = keychain_entry(provider)
    if entry is None:
        return error_response(409, _elsewhere(provider), code="key_not_in_keychain")
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, keys.store, entry, value)
    except keys.KeyRefError as exc:
        return error_response(503, f"Not stored: {exc}.", code="keychain_unavailable")
    stored = f"Stored the key for '{name}' in the OS keychain."
    reload = state.actions.get("reload")
    if reload is None:
        return web.json_response({"ok": True, "message": f"{stored} Reload mappings to use it."})
    ok, said = await loop.run_in_executor(None, reload)
    used = "trayproxy uses it now." if ok else f"Reloading failed: {said}"
    return web.json_response({"ok": ok, "message": f"{stored} {used}"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_trayproxy/api/keys", list_keys)
    app.router.add_post("/_trayproxy/api/keys/{provider}", store_key)
