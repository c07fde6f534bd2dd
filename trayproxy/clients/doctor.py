"""Mapping health: ask each provider for its model list and check every mapping against it.

Used by ``trayproxy doctor`` and the page's "Check mappings" button. A provider's answer
(``GET {base_url}/models`` with trayproxy's key) says whether the key works; its list says
whether each mapped upstream model still exists there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from trayproxy.config.model import Config, Provider
from trayproxy.gateway import upstream

OK = "ok"
NO_KEY = "key missing"
KEY_REJECTED = "key rejected"
UNREACHABLE = "unreachable"
FAILED = "error"
NOT_LISTED = "not listed"
UNCHECKED = "not checked"

DEFAULT_TIMEOUT = 15.0
_MAX_LIST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    status: str  # OK, NO_KEY, KEY_REJECTED, UNREACHABLE, FAILED
    detail: str
    listed: int | None = None  # how many models the provider listed


@dataclass(frozen=True)
class MappingHealth:
    id: str
    provider: str
    model: str
    status: str  # OK, NOT_LISTED, UNCHECKED, or the provider's problem
    detail: str = ""


@dataclass(frozen=True)
class Report:
    providers: list[ProviderHealth]
    mappings: list[MappingHealth]

    @property
    def healthy(self) -> bool:
        return all(m.status == OK for m in self.mappings) and all(
            p.status == OK for p in self.providers
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "providers": [asdict(p) for p in self.providers],
            "mappings": [asdict(m) for m in self.mappings],
        }


def _matches(model: str, listed: set[str]) -> bool:
    if model in listed:
        return True
    lowered = {m.lower() for m in listed}
    if model.lower() in lowered:
        return True
    # Ollama lists "qwen3:latest" for a model pulled as "qwen3"
    return ":" not in model and f"{model.lower()}:latest" in lowered


async def _list_models(
    session: aiohttp.ClientSession,
    provider: Provider,
    timeout: float,
    proxy_for: Callable[[str], str | None],
    redact: Callable[[str], str],
) -> tuple[ProviderHealth, set[str] | None]:
    name = provider.name
    try:
        headers = upstream.provider_headers(provider)
    except upstream.MissingKeyError as exc:
        return ProviderHealth(name, NO_KEY, str(exc)), None
    url = upstream.endpoint_url(provider.base_url, "models")
    headers["accept"] = "application/json"

    async def fetch() -> tuple[int, bytes]:
        async with session.get(
            url, headers=headers, allow_redirects=False, proxy=proxy_for(url)
        ) as resp:
            parts, size = [], 0
            async for piece in resp.content.iter_any():  # a long list arrives in many reads
                parts.append(piece)
                size += len(piece)
                if size > _MAX_LIST_BYTES:
                    break
            return resp.status, b"".join(parts)

    try:
        status, data = await asyncio.wait_for(fetch(), timeout)
    except asyncio.TimeoutError:
        return ProviderHealth(name, UNREACHABLE, f"no answer from {url} in {timeout:g} s"), None
    except aiohttp.ClientConnectorError as exc:
        return ProviderHealth(name, UNREACHABLE, f"cannot reach {url}: {exc.os_error}"), None
    except aiohttp.ClientError as exc:
        return ProviderHealth(name, FAILED, f"{url}: {type(exc).__name__}: {exc}"), None
    text = redact(data[:300].decode("utf-8", "replace").strip())
    if status in (401, 403):
        return ProviderHealth(
            name, KEY_REJECTED, f"{status} from {url}: the provider refused the key. {text}"
        ), None
    if status != 200:
        return ProviderHealth(name, FAILED, f"{status} from {url}: {text}"), None
    try:
        payload = json.loads(data)
        items = payload["data"] if isinstance(payload, dict) else payload
        listed = {str(m["id"]) for m in items if isinstance(m, dict) and "id" in m}
    except (ValueError, KeyError, TypeError):
        return ProviderHealth(name, FAILED, f"{url} did not answer with a model list"), None
    return ProviderHealth(name, OK, f"{len(listed)} models listed", len(listed)), listed


async def check(
    config: Config,
    session: aiohttp.ClientSession,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    proxy_for: Callable[[str], str | None] = lambda url: None,
    redact: Callable[[str], str] = lambda text: text,
) -> Report:
    """Check every provider (at once) and every mapping."""
    names = sorted(config.providers)
    results = await asyncio.gather(
        *(_list_models(session, config.providers[n], timeout, proxy_for, redact) for n in names)
    )
    by_name = dict(zip(names, results, strict=True))
    mappings = []
    for model_id, mapping in sorted(config.models.items()):
        health, listed = by_name[mapping.provider]
        if listed is not None:
            found = _matches(mapping.model, listed)
            status = OK if found else NOT_LISTED
            detail = "" if found else f"{mapping.provider} does not list '{mapping.model}'"
        elif health.status in (NO_KEY, KEY_REJECTED):
            status, detail = health.status, health.detail
        else:
            status, detail = UNCHECKED, health.detail
        mappings.append(MappingHealth(model_id, mapping.provider, mapping.model, status, detail))
    return Report([h for h, _ in results], mappings)


async def run(config: Config, *, timeout: float = DEFAULT_TIMEOUT) -> Report:
    """A check with a session of its own (the command line)."""
    from trayproxy.core.secret import redactor
    from trayproxy.gateway.upstream import system_proxy

    connector = aiohttp.TCPConnector(limit_per_host=4)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        return await check(
            config,
            session,
            timeout=timeout,
            proxy_for=system_proxy,
            redact=redactor(config.secret_values()),
        )


def render(report: Report) -> str:
    """The report as two tables and a verdict, for a terminal."""
    from trayproxy.core.table import render_table

    prow = [(p.name, p.status, p.detail) for p in report.providers]
    mrow = [(m.id, m.provider, m.model, m.status) for m in report.mappings]
    lines = [
        render_table(("PROVIDER", "STATUS", "DETAIL"), prow),
        "",
        render_table(("MODEL ID", "PROVIDER", "UPSTREAM MODEL", "STATUS"), mrow),
        "",
    ]
    bad = [m for m in report.mappings if m.status != OK]
    if report.healthy:
        lines.append("All mappings look healthy.")
    else:
        providers = {p.name: p for p in report.providers}
        for m in bad:
            provider = providers.get(m.provider)
            if provider is not None and m.detail and m.detail == provider.detail:
                why = f"provider '{m.provider}' is {provider.status}, above"  # said once
            else:
                why = m.detail
            lines.append(f"{m.id}: {m.status}" + (f" ({why})" if why else ""))
    return "\n".join(lines)
