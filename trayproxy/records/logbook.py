"""One :class:`RouteRecord` per relayed request, kept in a bounded ring buffer."""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter
from time import time as wall_time
from typing import Any

from trayproxy.core.prices import Price, cost
from trayproxy.core.usage import Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteRecord:
    id: int
    uid: str  # unique across restarts: "<run>-<id>"
    time: float  # Unix time the request arrived
    endpoint: str  # "chat/completions"
    client_model: str | None
    provider: str | None
    upstream_model: str | None
    rule: str | None  # "exact", "provider-prefix", or None when nothing was routed
    stream: bool
    status: int
    ttfb_ms: float | None
    duration_ms: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    upstream_url: str | None = None
    rewrites: tuple[str, ...] = ()
    error_body: str | None = None  # the upstream's error answer, redacted, at most 4 KiB
    attempts: tuple[dict[str, Any], ...] = ()  # with fallbacks: every provider tried
    # the provider reported no (or partial) token counts: trayproxy estimated them
    tokens_estimated: bool = False
    key_label: str | None = None  # the provider key that served, by its label
    keys_skipped: tuple[str, ...] = ()  # "label: why" for each key passed over
    cached_tokens: int | None = None  # of prompt_tokens, read from the provider's cache
    reasoning_tokens: int | None = None  # of the output, spent thinking
    cost: float | None = None  # dollars; None: no price known (never taken as 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rewrites"] = list(self.rewrites)
        d["attempts"] = list(self.attempts)
        d["keys_skipped"] = list(self.keys_skipped)
        return d

    def log_line(self) -> str:
        target = f"{self.provider}:{self.upstream_model}" if self.provider else "-"
        ttfb = f"{self.ttfb_ms:.0f}ms" if self.ttfb_ms is not None else "-"
        tokens = (
            ("~" if self.tokens_estimated else "")
            + f"{_n(self.prompt_tokens)}/{_n(self.completion_tokens)}"
            if self.prompt_tokens is not None or self.completion_tokens is not None
            else "-"
        )
        line = (
            f"{self.endpoint} {_printable(self.client_model or '-')} -> {_printable(target)} "
            f"{'stream' if self.stream else 'json'} {self.status} "
            f"ttfb={ttfb} total={self.duration_ms:.0f}ms tokens={tokens}"
        )
        if self.cost is not None:
            line += " cost=$" + (f"{self.cost:.6f}".rstrip("0").rstrip(".") or "0")
        if self.key_label:
            line += f" key={_printable(self.key_label)}"
        if self.rule and self.rule != "exact":
            line += f" rule={self.rule}"
        if self.error:
            line += f" error={self.error[:200]!r}"
        return line


def _printable(text: str) -> str:
    """Model ids come from clients: keep one record on one log line."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


@dataclass
class RecordDraft:
    """Filled in while a request is handled; frozen into a RouteRecord at the end."""

    endpoint: str
    time: float = field(default_factory=wall_time)
    started: float = field(default_factory=perf_counter)
    client_model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    rule: str | None = None
    stream: bool = False
    status: int = 0
    ttfb_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    upstream_url: str | None = None
    rewrites: list[str] = field(default_factory=list)
    error_body: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    tokens_estimated: bool = False
    key_label: str | None = None
    keys_skipped: list[str] = field(default_factory=list)
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    price: Price | None = None  # of the model that answered, if known
    delivered: bool = False  # the client has the stream's end ([DONE]); what follows is ours

    def take_usage(self, usage: Usage) -> None:
        """The provider's token counts."""
        self.prompt_tokens = usage.prompt_tokens
        self.completion_tokens = usage.completion_tokens
        self.cached_tokens = usage.cached_tokens
        self.reasoning_tokens = usage.reasoning_tokens

    def mark_first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = (perf_counter() - self.started) * 1000

    def finish(
        self, record_id: int, run: str = "0", redact: Callable[[str], str] = str
    ) -> RouteRecord:
        def hide(text: str | None) -> str | None:
            return None if text is None else redact(text)

        return RouteRecord(
            id=record_id,
            uid=f"{run}-{record_id}",
            time=self.time,
            endpoint=self.endpoint,
            client_model=hide(self.client_model),
            provider=self.provider,
            upstream_model=hide(self.upstream_model),
            rule=self.rule,
            stream=self.stream,
            status=self.status,
            ttfb_ms=None if self.ttfb_ms is None else round(self.ttfb_ms, 1),
            duration_ms=round((perf_counter() - self.started) * 1000, 1),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            error=hide(self.error),
            upstream_url=self.upstream_url,
            rewrites=tuple(self.rewrites),
            error_body=hide(self.error_body),
            attempts=tuple(
                {**a, "error": hide(a["error"])} if a.get("error") else a for a in self.attempts
            ),
            tokens_estimated=self.tokens_estimated,
            key_label=self.key_label,
            keys_skipped=tuple(self.keys_skipped),
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cost=cost(
                self.price,
                self.prompt_tokens,
                self.completion_tokens,
                self.cached_tokens,
                self.reasoning_tokens,
            ),
        )


Subscriber = Callable[[RouteRecord], None]


class Logbook:
    """Thread-safe ring buffer of recent records, with subscribers."""

    def __init__(self, size: int = 500) -> None:
        self._lock = threading.Lock()
        self._records: deque[RouteRecord] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._subscribers: list[Subscriber] = []
        self.run = secrets.token_hex(4)  # tells this run's records from earlier ones
        self.redact: Callable[[str], str] = str  # set from the config's secrets

    def resize(self, size: int) -> None:
        with self._lock:
            if size != self._records.maxlen:
                self._records = deque(self._records, maxlen=size)

    def add(self, draft: RecordDraft) -> RouteRecord:
        with self._lock:
            record = draft.finish(next(self._ids), self.run, self.redact)
            self._records.append(record)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(record)
            except Exception:  # a broken subscriber must not break the relay
                log.exception("routing-log subscriber %r failed", callback)
        return record

    def recent(self, limit: int | None = None) -> list[RouteRecord]:
        """Newest first."""
        with self._lock:
            items = list(self._records)
        items.reverse()
        return items if limit is None else items[:limit]

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe
