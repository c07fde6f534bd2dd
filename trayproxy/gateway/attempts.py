"""Send a routed request upstream, one attempt per route (fallbacks), and answer.

Each route is an *attempt*. An attempt that fails before anything reached the client (no
key, connection refused, no answer within ``first_byte_timeout``, the connection lost before
an answer, 429, 5xx) moves on to the next route; the last one's failure is what the client
sees. An attempt sends its request once: it is never repeated on another connection. Once an
answer starts flowing to the client, nothing is retried: a failure then is an in-stream error
event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from trayproxy.config.parse import Config
from trayproxy.core.usage import usage_from_body
from trayproxy.gateway import provider_client, provider_errors, upstream
from trayproxy.gateway.errors import error_message_from_body, error_response
from trayproxy.gateway.state import ProxyState
from trayproxy.gateway.stream import copy_headers, stream_back, within
from trayproxy.providers import dialect
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import PROVIDER_PREFIX, Route, suggest

_JSON_LIMIT_FOR_USAGE = 32 * 1024 * 1024
_ERROR_LIMIT = 1024 * 1024  # a provider's error answer is read up to this


@dataclass
class Failure:
    """An attempt that failed before the client got anything: try the next route."""

    status: int
    message: str
    code: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # the provider's own error answer, passed on if it is the last


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def run(
    request: web.Request,
    state: ProxyState,
    config: Config,
    routes: list[Route],
    endpoint: str,
    body: dict[str, Any],
    draft: RecordDraft,
) -> web.StreamResponse:
    failure: Failure | None = None
    tried = 0
    for index, route in enumerate(routes):
        last = index == len(routes) - 1
        name = route.provider.name
        cooling = state.cooldowns.get(name, 0.0) - time.monotonic()
        if cooling > 0 and not last:
            draft.attempts.append(
                {
                    "provider": name,
                    "model": route.upstream_model,
                    "status": None,
                    "error": f"skipped: rate-limited for {cooling:.0f} s more",
                    "ms": 0,
                }
            )
            continue
        _describe(draft, route, first=index == 0)
        started = time.perf_counter()
        outcome = await _attempt(
            request, state, config, route, endpoint, body, draft, retried=tried > 0
        )
        tried += 1
        ms = round((time.perf_counter() - started) * 1000, 1)
        if isinstance(outcome, Failure):
            failure = outcome
            if len(routes) == 1:
                continue  # one route: the record itself says what happened
            draft.attempts.append(
                {
                    "provider": name,
                    "model": route.upstream_model,
                    "status": outcome.status,
                    "error": outcome.message,
                    "ms": ms,
                }
            )
            continue
        if len(routes) > 1:
            draft.attempts.append(
                {
                    "provider": name,
                    "model": route.upstream_model,
                    "status": outcome.status,
                    "error": None,
                    "ms": ms,
                }
            )
        return outcome
    assert failure is not None
    return _give_up(failure, draft, retried=tried > 1)


def _describe(draft: RecordDraft, route: Route, *, first: bool) -> None:
    if not first:
        draft.rewrites.append(
            f"fallback: {route.client_model} ({route.provider.name}/{route.upstream_model})"
        )
    draft.provider = route.provider.name
    draft.upstream_model = route.upstream_model
    draft.rule = route.rule if first else "fallback"
    if route.rewritten and first:
        draft.rewrites.append(f"model: {route.client_model} → {route.upstream_model}")
    if route.rule != "exact" and first:
        draft.rewrites.append(f"routed by provider prefix '{route.provider.name}/'")


def _give_up(failure: Failure, draft: RecordDraft, *, retried: bool) -> web.Response:
    draft.status = failure.status
    draft.error = failure.message
    headers = dict(failure.headers)
    if retried:
        headers["x-should-retry"] = "false"
    if failure.body is not None:
        draft.error_body = failure.body[:4096].decode("utf-8", "replace")
        resp = web.Response(status=failure.status, body=failure.body, headers=headers)
        resp.content_type = "application/json"
        return resp
    return error_response(failure.status, failure.message, code=failure.code, headers=headers)


class _AnswerTooLarge(Exception):
    pass


async def _attempt(
    request: web.Request,
    state: ProxyState,
    config: Config,
    route: Route,
    endpoint: str,
    body: dict[str, Any],
    draft: RecordDraft,
    *,
    retried: bool,
) -> web.StreamResponse | Failure:
    provider = route.provider
    name = provider.name
    sent, exchange = dialect.prepare(
        provider.profile,
        endpoint,
        body,
        state.reasoning,
        max_output_tokens=route.max_output_tokens,
    )
    try:
        up = upstream.build(route, endpoint, request.headers.items(), sent)
    except upstream.MissingKeyError as exc:
        return Failure(502, str(exc), "provider_key_missing")
    draft.upstream_url = up.url
    for note in (*up.rewrites, *exchange.notes):
        if note not in draft.rewrites:
            draft.rewrites.append(note)
    session = state.session
    assert session is not None, "the app's client session is created at startup"
    proxy = state.proxy_for(up.url)
    unusable = provider_client.proxy_problem(proxy)
    if unusable is not None:
        where = _origin(up.url)
        message = f"Cannot reach provider '{name}' at {where}: {unusable}"
        return Failure(502, message, "upstream_unreachable")
    try:
        resp = await within(
            session.post(
                up.url,
                data=up.body,
                headers=up.headers,
                proxy=proxy,
                allow_redirects=False,
                timeout=provider_client.timeout(provider.connect_timeout),
            ),
            provider.first_byte_timeout,
        )
    except provider_client.CLIENT_ERRORS as exc:
        reason = provider_client.unreachable_reason(exc, provider.connect_timeout)
        if reason is not None:
            return Failure(
                502,
                state.redact(f"Cannot reach provider '{name}' at {_origin(up.url)}: {reason}"),
                "upstream_unreachable",
            )
        if not provider_client.sent(exc):
            why = provider_client.unsent_reason(exc)
            message = f"Cannot send the request to provider '{name}': {why}"
            return Failure(502, state.redact(message), "upstream_error")
        why = provider_client.broken_answer_reason(exc)
        message = f"Provider '{name}' {why}. The request was sent once; it is not repeated."
        return Failure(502, state.redact(message), "upstream_error")
    except asyncio.TimeoutError:
        return Failure(
            504,
            f"Provider '{name}' did not start answering within "
            f"{provider.first_byte_timeout:g} s (first_byte_timeout).",
            "upstream_timeout",
        )
    try:
        return await _answer(
            request, state, config, resp, route, endpoint, draft, exchange, retried=retried
        )
    finally:
        resp.release()  # back to the pool if the answer was read whole, else closed
        draft.rewrites.extend(exchange.answer_notes())


async def _read_whole(resp: aiohttp.ClientResponse, idle: float, limit: int) -> bytes:
    """The whole (decompressed) answer; :class:`_AnswerTooLarge` past ``limit`` bytes, having
    held no more than ``limit`` and one read's worth."""
    content = resp.content
    if content.is_eof():  # it came with the headers (most JSON answers): no timer needed
        data = content.read_nowait()
        if len(data) > limit:
            raise _AnswerTooLarge
        return data
    parts: list[bytes] = []
    size = 0
    read = content.readany
    while chunk := await within(read(), idle):
        size += len(chunk)
        if size > limit:
            raise _AnswerTooLarge
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _answer(
    request: web.Request,
    state: ProxyState,
    config: Config,
    resp: aiohttp.ClientResponse,
    route: Route,
    endpoint: str,
    draft: RecordDraft,
    exchange: dialect.Exchange,
    *,
    retried: bool,
) -> web.StreamResponse | Failure:
    provider = route.provider
    name = provider.name
    status = resp.status
    if status < 200:
        resp.close()
        return Failure(
            502,
            f"Provider '{name}' answered {status} {resp.reason or ''}".rstrip()
            + "; trayproxy expects an HTTP answer, not a protocol switch.",
            "upstream_error",
        )
    if 300 <= status < 400:
        where = resp.headers.get("Location", "?")
        return _final_error(
            draft,
            502,
            f"Provider '{name}' answered with a redirect ({status} to {where}); trayproxy "
            "does not follow redirects. Check base_url in config.toml.",
            "upstream_redirect",
            retried,
        )
    ctype = resp.headers.get("Content-Type", "").lower()
    if status < 300 and ("event-stream" in ctype or (draft.stream and "json" not in ctype)):
        return await stream_back(
            request, state, resp, draft, provider, exchange.stream_rewriter(), retried=retried
        )
    draft.mark_first_byte()  # a JSON answer starts with its status line and headers
    failed = status >= 400  # an error is a few lines: more is not read (nor redacted, parsed)
    limit = _ERROR_LIMIT if failed else config.server.max_answer_bytes
    data: bytes | None
    try:
        data = await _read_whole(resp, provider.idle_timeout, limit)
    except asyncio.TimeoutError:
        return Failure(504, f"Provider '{name}' stopped sending its answer.", "upstream_timeout")
    except _AnswerTooLarge:
        if failed:
            data = None
        else:
            return Failure(
                502,
                f"Provider '{name}' sent an answer larger than {config.server.max_answer_mb} "
                "MiB (decompressed); trayproxy stopped reading it. Raise [server] "
                "max_answer_mb in config.toml if such answers are expected.",
                "upstream_answer_too_large",
            )
    except provider_client.CLIENT_ERRORS as exc:
        why = provider_client.broken_answer_reason(exc)
        return Failure(502, state.redact(f"Provider '{name}' {why}."), "upstream_error")
    if data is None or failed:
        return _provider_error(state, config, resp, route, endpoint, draft, data, retried)
    draft.status = status
    if len(data) <= _JSON_LIMIT_FOR_USAGE:
        found = usage_from_body(data)
        if found:
            draft.prompt_tokens = found.prompt_tokens
            draft.completion_tokens = found.completion_tokens
        data = exchange.rewrite_body(data)
    out = web.Response(status=status, body=data)
    copy_headers(resp, out, name, retried)
    return out


def _provider_error(
    state: ProxyState,
    config: Config,
    resp: aiohttp.ClientResponse,
    route: Route,
    endpoint: str,
    draft: RecordDraft,
    data: bytes | None,  # None: longer than _ERROR_LIMIT, not read whole
    retried: bool,
) -> web.Response | Failure:
    """A provider's error answer (status >= 400) as the client sees it: 401/403 as trayproxy's
    own key problem, 429 and 5xx as a failed attempt (the next route may answer), other 4xx
    passed on. ``provider_errors`` words the body."""
    name = route.provider.name
    status = resp.status
    if status in (401, 403):
        detail = state.redact(error_message_from_body(data or b""))
        draft.error_body = state.redact((data or b"")[:4096].decode("utf-8", "replace"))
        return _final_error(
            draft,
            502,
            f"Provider '{name}' rejected trayproxy's key for it ({status}: {detail}). Check "
            f"api_key under [providers.{name}] in config.toml; your editor's key is not used.",
            "upstream_auth_failed",
            retried,
        )
    if data is None:
        said = provider_errors.too_long(status, name, _ERROR_LIMIT)
        data = b""
    else:
        data = state.redact_bytes(data)
        by_prefix = route.rule == PROVIDER_PREFIX
        said = provider_errors.explain(
            status,
            data,
            resp.headers.get("Content-Type", ""),
            provider=name,
            endpoint=endpoint,
            client_model=route.client_model,
            upstream_model=route.upstream_model,
            by_prefix=by_prefix,
            suggestions=suggest(config, route.client_model) if by_prefix else [],
        )
    headers = dict(upstream.response_headers(resp.headers.items()))
    headers.pop("Content-Type", None)
    headers["x-trayproxy-provider"] = name
    if status == 429 or status >= 500:
        wait = _retry_after(resp.headers)
        if status == 429 and wait:
            state.cooldowns[name] = time.monotonic() + wait
        return Failure(status, said.message, said.code or f"upstream_{status}", headers, said.body)
    draft.status = status
    draft.error = said.message
    draft.error_body = data[:4096].decode("utf-8", "replace")
    if retried:
        headers["x-should-retry"] = "false"
    out = web.Response(status=status, body=said.body, headers=headers)
    out.content_type = "application/json"
    return out


def _final_error(
    draft: RecordDraft, status: int, message: str, code: str, retried: bool
) -> web.Response:
    draft.status = status
    draft.error = message
    headers = {"x-should-retry": "false"} if retried else None
    return error_response(status, message, code=code, headers=headers)


def _origin(url: str) -> str:
    return "/".join(url.split("/", 3)[:3])
