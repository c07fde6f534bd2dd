"""Which of a provider's keys a request uses, and what each key's state is.

A key that got a 429 cools down for as long as the provider asked (``Retry-After``, or "try
again in 7.5s" in its words), else for a backoff that doubles with each 429 in a row; a key
that got a 401 or 403 is set aside until the config changes. ``order`` uses the first ready
key; ``round-robin`` starts each request at the next one. Touched only on the loop thread.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trayproxy.config.model import Config, Provider, ProviderKey

BACKOFF_FIRST = 10.0  # seconds a 429 without a hint cools a key for; doubled each time
BACKOFF_MAX = 300.0
LONGEST_WAIT = 86_400.0  # a provider's "try again in 23h" (a daily quota) is believed


@dataclass
class Cooling:
    until: float = 0.0  # monotonic
    wall: float = 0.0  # the same moment as Unix time, for the page
    strikes: int = 0  # 429s in a row without a hint: the backoff doubles


@dataclass(frozen=True)
class Pick:
    """The keys of one provider in the order a request tries them now, and the ones it
    passes over (``label: why``)."""

    ready: tuple[ProviderKey, ...]
    skipped: tuple[str, ...]
    wait: float  # with no ready key: seconds until the first cooling one is ready (else 0)
    all_rejected: bool


class KeyPool:
    """Rate limits are kept per key and model (Groq, NVIDIA and most providers count per
    model: a fallback to another model on the same key may well be answered); a rejected
    key is set aside for every model."""

    def __init__(self) -> None:
        self._cooling: dict[tuple[str, str, str], Cooling] = {}
        # (provider, label, model): why; model "" for every model (a 401)
        self._rejected: dict[tuple[str, str, str], str] = {}
        self._turn: dict[str, int] = {}

    def pick(self, provider: Provider, model: str) -> Pick:
        """The ready keys of ``provider`` for ``model``, in the order this request tries
        them."""
        keys = provider.keys
        if provider.key_strategy == "round-robin" and len(keys) > 1:
            turn = self._turn.get(provider.name, 0) % len(keys)
            self._turn[provider.name] = turn + 1
            keys = keys[turn:] + keys[:turn]
        now = time.monotonic()
        ready: list[ProviderKey] = []
        unset: list[ProviderKey] = []  # its variable or keychain entry is empty
        skipped: list[str] = []
        waits: list[float] = []
        for key in keys:
            if key.ref.missing:
                unset.append(key)
                continue
            rejected = self._rejected.get((provider.name, key.label, "")) or self._rejected.get(
                (provider.name, key.label, model)
            )
            cooling = self._cooling.get((provider.name, key.label, model))
            if rejected is not None:
                skipped.append(f"{key.label}: set aside ({rejected})")
            elif cooling is not None and cooling.until > now:
                left = cooling.until - now
                waits.append(left)
                skipped.append(f"{key.label}: rate-limited for {left:.0f} s more")
            else:
                ready.append(key)
        if ready or waits or len(unset) < len(keys):
            skipped += [f"{key.label}: not set" for key in unset]
        else:  # none is set: the attempt says which and how to set one
            ready = unset[:1]
        return Pick(
            tuple(ready),
            tuple(skipped),
            0.0 if ready or not waits else min(waits),
            not ready and not waits,
        )

    def cool(self, provider: str, key: ProviderKey, model: str, wait: float | None) -> float:
        """``key`` was answered 429 for ``model``: it rests for ``wait`` seconds (the
        provider's word), or a backoff. Returns the seconds it rests."""
        where = (provider, key.label, model)
        cooling = self._cooling.get(where) or Cooling()
        now = time.monotonic()
        if wait is None and cooling.until > now:  # requests sent before it rested: one strike
            return cooling.until - now
        if wait is None:
            wait = min(BACKOFF_FIRST * 2**cooling.strikes, BACKOFF_MAX)
            cooling.strikes += 1
        wait = min(max(wait, 1.0), LONGEST_WAIT)
        cooling.until = now + wait
        cooling.wall = time.time() + wait
        self._cooling[where] = cooling
        return wait

    def served(self, provider: str, key: ProviderKey, model: str) -> None:
        self._cooling.pop((provider, key.label, model), None)

    def reject(self, provider: str, key: ProviderKey, why: str, model: str = "") -> bool:
        """Set ``key`` aside, for ``model`` only when given (a 403: that model is not for
        this key), else for all; True the first time (the one notice)."""
        first = (provider, key.label, model) not in self._rejected
        self._rejected[(provider, key.label, model)] = why
        return first

    def config_changed(self, config: Config) -> None:
        """A new config: rejected keys get another chance (the user may have fixed them),
        keys no longer configured are forgotten; rate limits still hold."""
        self._rejected.clear()
        labels = {(name, key.label) for name, p in config.providers.items() for key in p.keys}
        for where in [w for w in self._cooling if w[:2] not in labels]:
            del self._cooling[where]

    def snapshot(self, providers: Mapping[str, Provider]) -> dict[str, list[dict[str, Any]]]:
        """Each provider's keys by label, with their state, for the page (no values):
        ``ready``, ``missing`` (its variable or keychain entry is empty), ``rejected``
        (with why), ``cooling`` (with the models it rests for, until when) or ``refused``
        (a 403 for some models, with why)."""
        now = time.monotonic()
        out: dict[str, list[dict[str, Any]]] = {}
        for name, provider in providers.items():
            rows = []
            for key in provider.keys:
                row: dict[str, Any] = {"label": key.label, "state": "ready"}
                rejected = self._rejected.get((name, key.label, ""))
                refused = {
                    where[2]: why
                    for where, why in self._rejected.items()
                    if where[:2] == (name, key.label) and where[2]
                }
                resting = {
                    where[2]: round(c.wall, 1)
                    for where, c in self._cooling.items()
                    if where[:2] == (name, key.label) and c.until > now
                }
                if key.ref.missing:
                    row["state"] = "missing"
                elif rejected is not None:
                    row.update(state="rejected", why=rejected)
                elif resting:
                    row.update(state="cooling", until=max(resting.values()), models=resting)
                if refused and row["state"] == "ready":  # refused for some models only
                    row.update(
                        state="refused", why="; ".join(f"{m}: {w}" for m, w in refused.items())
                    )
                rows.append(row)
            out[name] = rows
        return out


# "Please try again in 7.5s", "try again in 1m30s", "retry after 20 seconds", "in 2 minutes"
_WAIT_WORDS = re.compile(
    r"(?:try again|retry)(?: after| in)?\s+(?:in\s+)?"
    r"(?:(\d+(?:\.\d+)?)\s*h(?:ours?)?\s*)?(?:(\d+(?:\.\d+)?)\s*m(?:in(?:utes?)?)?(?!s\b)\s*)?"
    r"(?:(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|ms)\b)?",
    re.IGNORECASE,
)


def wait_asked(headers: Mapping[str, str], body: bytes | None) -> float | None:
    """How long a 429 asks to wait: its ``Retry-After`` header (seconds or a date), else
    the "try again in N s" of its message; None when it does not say."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None:
                return max(0.0, when.timestamp() - time.time())
    if not body:
        return None
    text = body[:8192].decode("utf-8", "replace")
    for found in _WAIT_WORDS.finditer(text):
        hours, minutes, amount, unit = found.groups()
        if hours is None and minutes is None and amount is None:
            continue
        seconds = float(hours or 0) * 3600 + float(minutes or 0) * 60
        if amount is not None:
            seconds += float(amount) / (1000 if unit.lower() == "ms" else 1)
        return seconds
    return None
