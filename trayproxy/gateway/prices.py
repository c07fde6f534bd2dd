"""Prices for the record: a model's from config.toml, else from its provider's published
price list (read when the provider is first used, then daily), else unknown; and what today
cost so far, against ``[costs] daily_budget``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trayproxy.config.model import Config, Provider
from trayproxy.core.prices import Price, from_model_list
from trayproxy.gateway import provider_client, upstream
from trayproxy.records import queries
from trayproxy.routing.resolve import Route

log = logging.getLogger(__name__)

LIST_LIMIT = 32 * 1024 * 1024  # OpenRouter's list is about 1.5 MB
REFRESH_SECONDS = 24 * 3600.0
RETRY_SECONDS = 600.0  # after a failed read (the network was down at start...)
LIST_TIMEOUT = 30.0


@dataclass
class PriceBook:
    """The price lists read from providers, by provider and model name. A list is read
    when its provider is first used (a provider never used is never asked), again a day
    later or after a config change (10 minutes later when a read failed); meanwhile a
    request's price may be unknown."""

    lists: dict[str, dict[str, Price]] = field(default_factory=dict)
    read_at: dict[str, float] = field(default_factory=dict)  # "name base_url" -> next read
    _reading: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def price(self, config: Config, route: Route) -> Price | None:
        """What ``route``'s model costs: the mapping's price, the provider's, its price
        list's, or None (unknown, never 0)."""
        mapping = config.models.get(route.client_model)
        if mapping is not None and mapping.price is not None:
            return mapping.price
        if route.provider.price is not None:
            return route.provider.price
        return self.lists.get(route.provider.name, {}).get(route.upstream_model)

    def want(
        self, session: Any, provider: Provider, proxy_for: Callable[[str], str | None]
    ) -> None:
        """Read ``provider``'s price list in the background if it publishes one and it was
        not read in the last day (nor is being read)."""
        if not provider.profile.price_list or session is None:
            return
        which = f"{provider.name} {provider.base_url}"
        due = self.read_at.get(which)
        if (due is not None and time.monotonic() < due) or which in self._reading:
            return
        self.read_at[which] = time.monotonic() + RETRY_SECONDS  # until it is read
        task = asyncio.create_task(self._refresh(session, provider, proxy_for, which))
        self._reading[which] = task
        task.add_done_callback(lambda _: self._reading.pop(which, None))

    def forget(self) -> None:
        """A new config: each price list is read again when its provider is next used."""
        self.read_at.clear()

    async def _refresh(
        self,
        session: Any,
        provider: Provider,
        proxy_for: Callable[[str], str | None],
        which: str,
    ) -> None:
        name = provider.name
        try:
            found = await asyncio.wait_for(_read(session, provider, proxy_for), LIST_TIMEOUT)
        except Exception as exc:  # kept from earlier, or unknown: never a crash
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("could not read the price list of provider %r: %s", name, why)
            return
        self.lists[name] = found
        self.read_at[which] = time.monotonic() + REFRESH_SECONDS
        log.info("read %d prices from provider %r", len(found), name)

    def is_reading(self, provider: Provider) -> bool:
        return f"{provider.name} {provider.base_url}" in self._reading

    async def reading(self, provider: Provider, seconds: float) -> None:
        """Wait up to ``seconds`` for ``provider``'s list if it is being read now."""
        task = self._reading.get(f"{provider.name} {provider.base_url}")
        if task is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), seconds)

    async def stop(self) -> None:
        """Stop reading lists (at shutdown)."""
        for task in list(self._reading.values()):
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task


async def _read(
    session: Any, provider: Provider, proxy_for: Callable[[str], str | None]
) -> dict[str, Price]:
    url = upstream.endpoint_url(provider.base_url, "models")
    async with session.get(  # without a key: OpenRouter lists its models and prices to anyone
        url,
        proxy=proxy_for(url),
        allow_redirects=False,
        timeout=provider_client.timeout(provider.connect_timeout),
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET {url} answered {resp.status}")
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > LIST_LIMIT:
                raise RuntimeError(f"GET {url} answered more than {LIST_LIMIT} bytes")
            parts.append(chunk)
    return from_model_list(json.loads(b"".join(parts)), provider.name)


@dataclass
class DailySpend:
    """What today's requests cost so far (local days); the budget is said once a day."""

    day: str = ""
    total: float = 0.0
    warned: tuple[str, float] | None = None  # the day and budget its notice was given for

    def add(self, when: float, cost: float, budget: float | None) -> str | None:
        """Count ``cost``; a notice's text when this request is the one that passes the
        budget (not after a restart on a day already past it, nor twice a day)."""
        day = time.strftime("%Y-%m-%d", time.localtime(when))
        if day != self.day:
            self.day, self.total = day, 0.0
        before = self.total
        self.total += cost
        if budget is None or not before <= budget < self.total or self.warned == (day, budget):
            return None
        self.warned = (day, budget)
        return (
            f"Today's requests cost ${self.total:.2f} so far, past your daily budget of "
            f"${budget:.2f} ([costs] daily_budget in config.toml). trayproxy goes on serving."
        )

    def seed(self, history: Path) -> None:
        """Start from what the history says today cost before this run (a worker thread)."""
        spent = queries.usage(history, days=1).get("today_cost", {}).get("cost")
        if spent:
            self.day = time.strftime("%Y-%m-%d")
            self.total += float(spent)


async def seed_spend(state: Any) -> None:
    """Today's spend starts from what the history says earlier runs cost today."""
    if state.history is None:
        return
    try:
        await asyncio.to_thread(state.spend.seed, state.history.path)
    except Exception:
        log.exception("reading today's cost from the history failed")
