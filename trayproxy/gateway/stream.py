"""Relaying a streamed answer: each chunk written to the client as it arrives, reading
paused while the client is slower (back-pressure), an idle timer that keep-alive comments do
not reset, the provider's quirks fixed event by event, and an in-stream error event when the
provider stalls, breaks off or ends without finishing (a truncated answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import aiohttp
from aiohttp import web

from trayproxy.config.model import Provider
from trayproxy.core.usage import StreamWatcher
from trayproxy.gateway import provider_client, upstream
from trayproxy.gateway.client_stream import HELD_LIMIT, ClientStream, has_content
from trayproxy.gateway.errors import Failure
from trayproxy.gateway.key_pool import wait_asked
from trayproxy.gateway.state import ProxyState
from trayproxy.records.logbook import RecordDraft


class Source(Protocol):
    """What a stream is relayed for (an ``attempts.Attempt``)."""

    request: web.Request
    state: ProxyState
    draft: RecordDraft
    provider: Provider
    retried: bool
    client: ClientStream | None
    rate_limited: bool
    wait_asked: float | None

    @property
    def name(self) -> str: ...

    def record_unfinished(self) -> bool:
        """Whether the record waits for token counts or a price once the client has it all."""

    async def finish_record(self, written: Callable[[], int]) -> None:
        """Estimate the token counts the provider did not report (``written``: the answer's)
        and find the price of a first request."""

    def failure_event(self, failure: Failure) -> bytes:
        """A failure after the stream began, as its last event in the client's protocol."""


class Rewriter(Protocol):
    """What changes a stream on its way: a provider's dialect fixed, or a translation."""

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


T = TypeVar("T")
PING_SECONDS = 10.0


def copy_headers(
    resp: aiohttp.ClientResponse, out: web.StreamResponse, provider: str, retried: bool
) -> None:
    for key, value in upstream.response_headers(resp.headers.items()):
        out.headers.add(key, value)
    out.headers["x-trayproxy-provider"] = provider
    if retried:
        out.headers["x-should-retry"] = "false"


class _IdleWatchdog:
    """Ends a stream's wait for the provider after ``idle`` seconds without an event.

    One timer per idle period, moved lazily, instead of a timeout per read: a stream of
    thousands of chunks would otherwise create and cancel thousands of timers. It cancels the
    pumping task only while that task waits to read (never while it writes to a slow client).
    """

    def __init__(self, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._idle = idle
        self._deadline = self._loop.time() + idle
        self._fired = False
        self.reading = False
        self._handle = self._loop.call_at(self._deadline, self._check)

    def reset(self) -> None:
        self._deadline = self._loop.time() + self._idle

    def _check(self) -> None:
        now = self._loop.time()
        if now >= self._deadline and self.reading and self._task is not None:
            self._fired = True
            self._task.cancel()
            return
        self._handle = self._loop.call_at(max(self._deadline, now + 0.05), self._check)

    def expired(self) -> bool:
        """Whether the cancellation just caught was this watchdog's (then it is undone)."""
        if not self._fired:
            return False
        self._fired = False
        if sys.version_info >= (3, 11) and self._task is not None:
            self._task.uncancel()
        return True

    def close(self) -> None:
        self._handle.cancel()


if sys.version_info >= (3, 11):  # a timer on this task, not a task per wait as wait_for

    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        return await asyncio.wait_for(awaitable, seconds)


async def stream_back(
    attempt: Source,
    resp: aiohttp.ClientResponse,
    rewriter: Rewriter | None,
    opening: bytes = b"",
    ping: bytes | None = None,
) -> web.StreamResponse | Failure:
    """Write each upstream chunk to the client as it arrives (after ``opening``, a
    translation's first events, and ``ping`` after every ``PING_SECONDS`` the provider is
    silent, where the client's protocol has such an event). What comes before the first
    content event is held (``client_stream``): a failure then is returned, for the next key
    or route to answer. Status is always 200."""
    watcher = StreamWatcher()
    try:
        # a translation's client gets its end from finish(); other streams pass [DONE] on
        result = await _pump(
            attempt, resp, rewriter, watcher, opening, ping, relays_done=not opening
        )
    except asyncio.CancelledError:
        if attempt.draft.delivered:  # it had its end and hung up: the record is finished
            await _finish_record(attempt, watcher)
        raise
    if not isinstance(result, Failure):
        await _finish_record(attempt, watcher)
    return result


async def _finish_record(attempt: Source, watcher: StreamWatcher) -> None:
    """Token counts to estimate or a price to wait for, once the client has its whole
    answer (and may hang up meanwhile: a cancellation waits for this to end)."""
    if not watcher.events or not attempt.record_unfinished():
        return
    finishing = asyncio.create_task(attempt.finish_record(watcher.estimated_output_tokens))
    try:
        await asyncio.shield(finishing)
    except asyncio.CancelledError:
        await finishing
        raise


async def _pump(
    attempt: Source,
    resp: aiohttp.ClientResponse,
    rewriter: Rewriter | None,
    watcher: StreamWatcher,
    opening: bytes,
    ping: bytes | None = None,
    *,
    relays_done: bool = True,
) -> web.StreamResponse | Failure:
    draft, name, client = attempt.draft, attempt.name, attempt.client
    assert client is not None
    headers = [*upstream.response_headers(resp.headers.items())]
    idle = attempt.provider.idle_timeout
    sse = "event-stream" in resp.headers.get("Content-Type", "").lower()
    watchdog = _IdleWatchdog(idle)
    read = resp.content.readany
    events = 0
    first_chunk: float | None = None
    failure: Failure | None = None
    out = client.out if client.committed else None
    held = [opening] if opening else []  # before the first content: not written yet
    held_bytes = len(opening)
    try:
        while True:
            watchdog.reading = True
            try:
                if ping is None or out is None:
                    chunk = await read()
                else:  # a timer per read: only where the client's protocol pings
                    try:
                        chunk = await asyncio.wait_for(read(), PING_SECONDS)
                    except asyncio.TimeoutError:  # the provider is silent: say we are here
                        watchdog.reading = False
                        await out.write(ping)
                        continue
            except asyncio.CancelledError:
                if not watchdog.expired():
                    raise
                raise asyncio.TimeoutError from None
            except provider_client.CLIENT_ERRORS as exc:
                why = provider_client.broken_answer_reason(exc)
                failure = Failure(502, f"Provider '{name}' {why}.", "upstream_error")
                break
            watchdog.reading = False
            if not chunk:
                break
            if first_chunk is None:
                first_chunk = time.perf_counter()
            sent = chunk if rewriter is None else rewriter.feed(chunk)
            if out is not None:
                if sent:
                    await out.write(sent)  # waits while the client is slow: backpressure
            else:
                if sent:
                    held.append(sent)
                    held_bytes += len(sent)
                if has_content(chunk) or held_bytes > HELD_LIMIT:
                    out = await client.commit(
                        b"".join(held), headers, attempt.retried, attempt.failure_event
                    )
                    held = []
            watcher.feed(chunk)
            if out is None and watcher.error is not None:  # an error before any content
                failure = _early_error(attempt, watcher.error)
                break
            if relays_done and watcher.done and not draft.delivered and out is not None:
                draft.delivered = True  # the client has the stream's end: it may hang up now
                _take_usage(draft, watcher)
            if watcher.events != events:  # a real event, not a keep-alive comment
                events = watcher.events
                watchdog.reset()
                draft.mark_first_byte()  # a stream's first byte: its first event
    except asyncio.TimeoutError:
        failure = Failure(
            504,
            f"Provider '{name}' sent no new event for {idle:g} s (idle_timeout).",
            "upstream_timeout",
        )
    except ConnectionError:  # writing to the client: it went away
        draft.status = 499
        draft.error = "client disconnected"
        return client.out or web.StreamResponse(status=499)
    finally:
        watchdog.close()
    if rewriter is not None and failure is None:
        last = rewriter.finish()
        if last:
            held.append(last)
    cut = getattr(rewriter, "unfinished", False)  # a translation that wrote no end
    if failure is None and sse and (cut or not watcher.finished):
        failure = Failure(
            502,
            f"Provider '{name}' ended the stream without finishing it (no [DONE] and no "
            "finish_reason): the answer is truncated.",
            "upstream_truncated",
        )
    if out is None:
        if failure is not None:  # nothing of it reached the client: another may answer
            return failure
        try:  # a stream that ended without content (an empty answer)
            out = await client.commit(
                b"".join(held), headers, attempt.retried, attempt.failure_event
            )
        except ConnectionError:
            draft.status = 499
            draft.error = "client disconnected"
            return client.out or web.StreamResponse(status=499)
        held = []
    if held:
        with contextlib.suppress(ConnectionError):
            await out.write(b"".join(held))
    if draft.ttfb_ms is None and first_chunk is not None:  # bytes, but no SSE events
        draft.ttfb_ms = (first_chunk - draft.started) * 1000
    _take_usage(draft, watcher)
    if watcher.error:
        draft.error = watcher.error
    if failure is not None:
        draft.error = failure.message
        try:
            await out.write(attempt.failure_event(failure))
        except ConnectionError:
            return out
    with contextlib.suppress(ConnectionError):
        await out.write_eof()
        draft.delivered = True  # all of it is written: the client may hang up now
    return out


def _early_error(attempt: Source, said: str) -> Failure:
    """A provider's in-stream error before any content: nothing reached the client, so the
    next key or route may answer (a rate limit rests the key as a 429 would)."""
    name = attempt.name
    if "429" in said or "rate" in said.lower():
        attempt.rate_limited = True
        attempt.wait_asked = wait_asked({}, said.encode("utf-8", "replace"))
        return Failure(429, f"Provider '{name}' is rate-limited: {said}", "rate_limit_exceeded")
    if "overload" in said.lower():
        return Failure(503, f"Provider '{name}' is overloaded: {said}", "upstream_overloaded")
    return Failure(502, f"Provider '{name}' answered with an error: {said}", "upstream_error")


def _take_usage(draft: RecordDraft, watcher: StreamWatcher) -> None:
    if watcher.usage:
        draft.take_usage(watcher.usage)
