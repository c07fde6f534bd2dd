"""The order a request tries things in: each route (the model, then its fallbacks), and on
each route the provider's ready keys, until one answers.

A key answered 429 cools down and the request moves to the provider's next ready key,
before any fallback; a key answered 401/403 is set aside (one notice) and the next one is
tried. A route whose keys are all cooling is skipped while a fallback remains; as the last
route it is answered 429 at once, with the wait, instead of knocking again. A streamed
request stays free to move on until its first content event (``client_stream``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from trayproxy.config.model import Config, ProviderKey
from trayproxy.gateway.attempts import Attempt
from trayproxy.gateway.client_stream import ClientStream
from trayproxy.gateway.errors import Failure
from trayproxy.gateway.key_pool import Pick
from trayproxy.gateway.state import ProxyState
from trayproxy.gateway.translate import RESPONSES, native_base
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import Route


async def run(
    request: web.Request,
    state: ProxyState,
    config: Config,
    routes: list[Route],
    endpoint: str,
    body: dict[str, Any],
    draft: RecordDraft,
) -> web.StreamResponse:
    """Try each route and key in turn until one answers; every attempt goes in the record."""
    with ClientStream(request, state, draft, endpoint) as client:
        failure: Failure | None = None
        tries: list[dict[str, Any]] = []  # every key and route tried, for the record
        for index, route in enumerate(routes):
            last = index == len(routes) - 1
            provider = route.provider
            several = len(provider.keys) > 1
            pick = state.keys.pick(provider, route.upstream_model)
            draft.keys_skipped.extend(f"{provider.name} {why}" for why in pick.skipped)
            if not pick.ready:
                if index == 0:
                    _describe(draft, route, first=True)
                failure = _no_key_ready(provider.name, pick)
                if pick.all_rejected:
                    why = "skipped: every key is set aside (rejected)"
                else:
                    why = f"skipped: rate-limited for {pick.wait:.0f} s more"
                tries.append(_try(route, None, None, why, 0))
                if last:
                    break
                continue  # said once (its notice); meanwhile a fallback may answer
            own_events = endpoint == RESPONSES and native_base(route, RESPONSES) is None
            sent_ours = client.responses is not None and client.out is not None
            if endpoint == RESPONSES and not own_events and sent_ours:
                # its own response.created cannot follow the one trayproxy sent
                tries.append(_try(route, None, None, "skipped: " + _BEGUN, 0))
                continue
            _describe(draft, route, first=index == 0)
            for key in pick.ready:
                client.trying(
                    provider.name,
                    provider.keepalive_seconds if draft.stream else 0,
                    own_events=own_events,
                )
                state.prices.want(state.session, provider, state.proxy_for)
                # the record's, should the client hang up once it has the whole answer
                draft.price = state.prices.price(config, route)
                draft.key_label = key.label if key.ref.secret is not None else None
                attempt = Attempt(
                    request, state, config, route, endpoint, draft, retried=bool(tries), key=key
                )
                attempt.client = client
                started = time.perf_counter()
                label = key.label if several else None
                try:
                    outcome = await attempt.run(body)
                except asyncio.CancelledError:
                    if draft.delivered:  # the client had the whole answer and hung up
                        state.keys.served(provider.name, key, route.upstream_model)
                        tries.append(_try(route, label, 200, None, _ms(started)))
                        if len(tries) > 1:
                            draft.attempts = tries
                    raise
                ms = _ms(started)
                whole = not isinstance(outcome, Failure) and not outcome.prepared
                if whole and client.out is not None:  # a JSON answer cannot follow keep-alives
                    outcome = _whole_answer_too_late(provider.name, draft)
                if not isinstance(outcome, Failure):
                    state.keys.served(provider.name, key, route.upstream_model)
                    draft.error_body = None  # a failed key's or route's: this one answered
                    tries.append(_try(route, label, outcome.status, None, ms))
                    if len(tries) > 1:
                        draft.attempts = tries
                    return outcome
                failure = outcome
                tries.append(_try(route, label, outcome.status, outcome.message, ms))
                if attempt.rate_limited:
                    model, asked = route.upstream_model, attempt.wait_asked
                    wait = state.keys.cool(provider.name, key, model, asked)
                    draft.keys_skipped.append(
                        f"{provider.name} {key.label}: answered 429, resting {round(wait, 1):g} s"
                    )
                    continue  # the next key of this provider, then the next route
                if attempt.rejected is not None:
                    model = route.upstream_model if attempt.for_model else ""
                    _set_aside(state, provider.name, key, attempt.rejected, model)
                    draft.keys_skipped.append(f"{provider.name} {key.label}: {attempt.rejected}")
                    if several and key is not pick.ready[-1]:
                        continue  # another key of this provider may be good
                break  # another key would not do better than this failure
            if failure is not None and failure.final:
                break
        if len(tries) > 1:
            draft.attempts = tries
        draft.key_label = None  # no key served
        assert failure is not None
        if client.out is not None:  # kept alive: the client waits in-stream
            draft.status, draft.error = failure.status, failure.message
            return await client.fail(failure)
        return give_up(failure, draft, retried=len(tries) > 1)


_BEGUN = (
    "it serves the Responses API itself, and the client's stream had begun with trayproxy's "
    "response.created (keep-alive)"
)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _whole_answer_too_late(provider: str, draft: RecordDraft) -> Failure:
    """A provider that answers a streamed request with a whole JSON answer after the
    client's stream was opened for keep-alives: the answer cannot be sent as it is."""
    draft.rewrites.append("the provider's whole (non-streamed) answer came after keep-alives")
    return Failure(
        502,
        f"Provider '{provider}' answered the streamed request with a whole (non-streamed) "
        "answer after trayproxy had begun the stream to keep it alive; it cannot be relayed. "
        f"Set keepalive_seconds = 0 under [providers.{provider}] if it does not stream.",
        "upstream_error",
        final=True,
    )


def _no_key_ready(provider: str, pick: Pick) -> Failure:
    if pick.all_rejected:
        return Failure(
            502,
            f"Provider '{provider}' rejected trayproxy's key for it, which is set aside until "
            f"the config changes ({'; '.join(pick.skipped)}). Fix it under "
            f"[providers.{provider}] in config.toml (or in the page's Keys panel), then "
            "Reload mappings; your editor's key is not used.",
            "upstream_auth_failed",
            final=True,
        )
    seconds = max(1, round(pick.wait + 0.49))
    return Failure(
        429,
        f"Every key of provider '{provider}' is rate-limited; the first is ready again in "
        f"{seconds} s.",
        "rate_limit_exceeded",
        headers={"Retry-After": str(seconds)},
    )


def _set_aside(
    state: ProxyState, provider: str, key: ProviderKey, why: str, model: str = ""
) -> None:
    if state.keys.reject(provider, key, why, model) and state.notify is not None:
        which = f" for {model}" if model else ""
        state.notify(
            f"A key of {provider} was rejected",
            f"{provider} refused the key {key.label!r}{which} ({why}). trayproxy no longer "
            f"uses it{which} until the config changes; fix it and Reload mappings.",
        )


def give_up(failure: Failure, draft: RecordDraft, *, retried: bool = False) -> web.Response:
    """End the request with ``failure``: the record says so, the client gets its answer."""
    draft.status = failure.status
    draft.error = failure.message
    if failure.body is not None and draft.error_body is None:
        draft.error_body = failure.body[:4096].decode("utf-8", "replace")
    return failure.response(retried=retried)


def _try(
    route: Route, key: str | None, status: int | None, error: str | None, ms: float
) -> dict[str, Any]:
    tried: dict[str, Any] = {
        "provider": route.provider.name,
        "model": route.upstream_model,
        "status": status,
        "error": error,
        "ms": ms,
    }
    if key is not None:
        tried["key"] = key
    return tried


def _describe(draft: RecordDraft, route: Route, *, first: bool) -> None:
    if not first:
        note = f"fallback: {route.client_model} ({route.provider.name}/{route.upstream_model})"
        if note not in draft.rewrites:
            draft.rewrites.append(note)
    draft.provider = route.provider.name
    draft.upstream_model = route.upstream_model
    draft.rule = route.rule if first else "fallback"
    if route.rewritten and first:
        draft.rewrites.append(f"model: {route.client_model} → {route.upstream_model}")
    if route.rule != "exact" and first:
        draft.rewrites.append(f"routed by provider prefix '{route.provider.name}/'")
