"""The relay: one client request -> one upstream request, answer streamed back untouched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from typing import Any

import aiohttp
from aiohttp import web

from trayproxy import upstream
from trayproxy.config import Config
from trayproxy.errors import error_message_from_body, error_response, sse_error_event
from trayproxy.logbook import RecordDraft
from trayproxy.routing import UnknownModelError, resolve
from trayproxy.state import STATE, ProxyState
from trayproxy.usage import StreamWatcher, usage_from_body

log = logging.getLogger("trayproxy.requests")

# Endpoints relayed at both /v1/<name> and /<name>. Each carries a JSON body with "model".
RELAY_ENDPOINTS = ("chat/completions", "completions", "embeddings", "responses", "rerank")

_JSON_LIMIT_FOR_USAGE = 32 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


_MAX_MODEL_ID = 256


async def read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


def make_handler(endpoint: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await relay(request, endpoint)

    handler.__name__ = "relay_" + endpoint.replace("/", "_")
    return handler


async def relay(request: web.Request, endpoint: str) -> web.StreamResponse:
    state = request.app[STATE]
    config = state.config  # read once: a reload never splits a request
    draft = RecordDraft(endpoint=endpoint)
    state.active += 1
    state.idle.clear()
    try:
        resp = await _relay(request, endpoint, config, state, draft)
        if not draft.status:
            draft.status = resp.status
        return resp
    except asyncio.CancelledError:
        if state.stopping:
            draft.status = draft.status or 503
            draft.error = draft.error or "trayproxy stopped while answering"
        else:
            draft.status = 499  # nginx's "client closed request"
            draft.error = "client disconnected"
        raise
    except Exception as exc:
        draft.status = 500
        draft.error = f"internal error: {type(exc).__name__}"
        raise
    finally:
        state.active -= 1
        if not state.active:
            state.idle.set()
        record = state.logbook.add(draft)
        log.info("%s", record.log_line())


def _fail(
    draft: RecordDraft,
    status: int,
    message: str,
    *,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    draft.status = status
    draft.error = message
    return error_response(status, message, code=code, param=param, headers=headers)


async def _relay(
    request: web.Request, endpoint: str, config: Config, state: ProxyState, draft: RecordDraft
) -> web.StreamResponse:
    limit = config.server.max_body_bytes
    try:
        raw = await read_body(request, limit)
    except web.RequestPayloadError as exc:
        return _fail(draft, 400, f"Could not read the request body: {exc}", code="bad_body")
    except BodyTooLarge:
        return _fail(
            draft,
            413,
            f"Request body is larger than {config.server.max_body_mb} MiB. Raise "
            "[server] max_body_mb in config.toml to accept it.",
            code="request_too_large",
            headers={"Connection": "close"},
        )
    try:
        body = json.loads(raw, parse_constant=_no_constants, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        return _fail(draft, 400, f"The request body is not valid JSON: {exc}", code="invalid_json")
    if not isinstance(body, dict):
        return _fail(draft, 400, "The request body must be a JSON object.", code="invalid_json")
    draft.stream = body.get("stream") is True
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        return _fail(
            draft,
            400,
            "You must provide a model parameter (a model id as a string).",
            code="missing_model",
            param="model",
        )
    draft.client_model = model[:_MAX_MODEL_ID]
    try:
        route = resolve(config, model)
    except UnknownModelError as exc:
        return _fail(draft, 404, exc.message, code="model_not_found", param="model")
    draft.provider = route.provider.name
    draft.upstream_model = route.upstream_model
    draft.rule = route.rule
    try:
        up = upstream.build(route, endpoint, request.headers.items(), body)
    except upstream.MissingKeyError as exc:
        return _fail(draft, 502, str(exc), code="provider_key_missing")
    draft.upstream_url = up.url
    if route.rewritten:
        draft.rewrites.append(f"model: {route.client_model} → {route.upstream_model}")
    if route.rule != "exact":
        draft.rewrites.append(f"routed by provider prefix '{route.provider.name}/'")
    draft.rewrites.extend(up.rewrites)
    return await _send(request, state, route.provider, up, draft)


async def _send(
    request: web.Request,
    state: ProxyState,
    provider: Any,
    up: upstream.UpstreamRequest,
    draft: RecordDraft,
) -> web.StreamResponse:
    session = state.session
    assert session is not None, "the app's client session is created at startup"
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=provider.connect_timeout, sock_read=provider.read_timeout
    )
    name = provider.name
    try:
        async with session.post(
            up.url,
            data=up.body,
            headers=up.headers,
            allow_redirects=False,
            timeout=timeout,
            proxy=state.proxy_for(up.url),
        ) as resp:
            draft.mark_first_byte()  # the status line and headers are in
            if 300 <= resp.status < 400:
                where = resp.headers.get("Location", "?")
                return _fail(
                    draft,
                    502,
                    f"Provider '{name}' answered with a redirect ({resp.status} to {where}); "
                    "trayproxy does not follow redirects. Check base_url in config.toml.",
                    code="upstream_redirect",
                )
            ctype = resp.headers.get("Content-Type", "").lower()
            if resp.status < 300 and (
                "event-stream" in ctype or (draft.stream and "json" not in ctype)
            ):
                return await _stream_back(request, state, resp, draft, name)
            data = await resp.read()
            draft.status = resp.status
            if resp.status >= 400:
                draft.error = error_message_from_body(data)
                draft.error_body = data[:4096].decode("utf-8", "replace")
            elif len(data) <= _JSON_LIMIT_FOR_USAGE:
                usage = usage_from_body(data)
                if usage:
                    draft.prompt_tokens = usage.prompt_tokens
                    draft.completion_tokens = usage.completion_tokens
            out = web.Response(status=resp.status, body=data)
            _copy_headers(resp, out, name)
            return out
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
        return _fail(
            draft, 504, f"Provider '{name}' did not answer in time.", code="upstream_timeout"
        )
    except aiohttp.ClientConnectorError as exc:
        return _fail(
            draft,
            502,
            f"Cannot reach provider '{name}' at {_origin(up.url)}: {exc.os_error}",
            code="upstream_unreachable",
        )
    except aiohttp.ClientError as exc:
        return _fail(
            draft,
            502,
            f"Provider '{name}' failed: {type(exc).__name__}: {exc}",
            code="upstream_error",
        )


def _origin(url: str) -> str:
    parts = url.split("/", 3)
    return "/".join(parts[:3])


def _copy_headers(resp: aiohttp.ClientResponse, out: web.StreamResponse, provider: str) -> None:
    for key, value in upstream.response_headers(resp.headers.items()):
        out.headers.add(key, value)
    out.headers["x-trayproxy-provider"] = provider


async def _stream_back(
    request: web.Request,
    state: ProxyState,
    resp: aiohttp.ClientResponse,
    draft: RecordDraft,
    provider: str,
) -> web.StreamResponse:
    """Write each upstream chunk to the client as it arrives. Status is always 200."""
    out = web.StreamResponse(status=200)
    _copy_headers(resp, out, provider)
    out.headers["Cache-Control"] = "no-cache"
    out.headers["X-Accel-Buffering"] = "no"
    draft.status = 200
    await out.prepare(request)
    state.streams[out] = draft  # so that a shutdown can end it with an error event
    try:
        return await _pump(request, resp, out, draft, provider)
    finally:
        state.streams.pop(out, None)


async def _pump(
    request: web.Request,
    resp: aiohttp.ClientResponse,
    out: web.StreamResponse,
    draft: RecordDraft,
    provider: str,
) -> web.StreamResponse:
    watcher = StreamWatcher()
    failure: tuple[int, str, str] | None = None
    try:
        async for chunk in resp.content.iter_any():
            draft.mark_first_byte()
            await out.write(chunk)
            watcher.feed(chunk)
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
        failure = (504, f"Provider '{provider}' stopped sending mid-stream.", "upstream_timeout")
    except aiohttp.ClientPayloadError as exc:
        failure = (502, f"Provider '{provider}' broke off the stream: {exc}", "upstream_error")
    except aiohttp.ClientConnectionError as exc:
        if request.transport is None or request.transport.is_closing():
            draft.status = 499
            draft.error = "client disconnected"
            return out
        failure = (502, f"Provider '{provider}' broke off the stream: {exc}", "upstream_error")
    if watcher.usage:
        draft.prompt_tokens = watcher.usage.prompt_tokens
        draft.completion_tokens = watcher.usage.completion_tokens
    if watcher.error:
        draft.error = watcher.error
    if failure is not None:
        status, message, code = failure
        draft.error = message
        try:
            await out.write(sse_error_event(message, status=status, code=code))
        except (ConnectionError, aiohttp.ClientConnectionError):
            return out
    with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionError):
        await out.write_eof()
    return out
