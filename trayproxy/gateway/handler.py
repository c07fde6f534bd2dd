"""The relay: one client request -> one upstream request, answer streamed back untouched."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from trayproxy.config.model import MAX_MODEL_ID, Config, model_id_problem
from trayproxy.core import jsonbody
from trayproxy.gateway import chain, context_fit, translate, upstream
from trayproxy.gateway.errors import Failure
from trayproxy.gateway.state import STATE, ProxyState
from trayproxy.protocols.messages_request import COUNT_TOKENS, MESSAGES
from trayproxy.records import logfile
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import UnknownModelError, resolve_chain

log = logging.getLogger("trayproxy.requests")

# Endpoints relayed at both /v1/<name> and /<name>. Each carries a JSON body with "model".
RELAY_ENDPOINTS = (
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "rerank",
    MESSAGES,
    COUNT_TOKENS,
)


class BodyTooLarge(Exception):
    pass


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
        if draft.delivered:  # the client had the whole answer and hung up: not a failure
            raise
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
        record = state.logbook.add(draft)  # filed before the request counts as done
        if record.cost:
            passed = state.spend.add(record.time, record.cost, config.costs.daily_budget)
            if passed is not None and state.notify is not None:
                state.notify("Daily budget passed", passed)
        state.active -= 1
        if not state.active:
            state.idle.set()
        line = record.log_line()
        if not logfile.request_line(line):
            log.info("%s", line)


def _fail(
    draft: RecordDraft,
    status: int,
    message: str,
    *,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    failure = Failure(status, message, code, param=param, headers=headers or {}, final=True)
    return chain.give_up(failure, draft)


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
        body = jsonbody.loads(raw)
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
    draft.client_model = model[:MAX_MODEL_ID]
    problem = model_id_problem(model)
    if problem is not None:
        return _fail(draft, 400, f"The model id {problem}.", code="invalid_model", param="model")
    smuggled = upstream.forbidden_field(body)
    if smuggled is not None:
        return _fail(
            draft,
            400,
            f"The request sets {smuggled!r}: trayproxy chooses the provider URL and key "
            "from its config, never from a request.",
            code="forbidden_parameter",
            param=smuggled,
        )
    try:
        routes = resolve_chain(config, model)
    except UnknownModelError as exc:
        return _fail(draft, 404, state.redact(exc.message), code="model_not_found", param="model")
    if endpoint == COUNT_TOKENS:
        return await translate.count_tokens(routes, body, draft)
    fitting = await context_fit.fit(config, routes, endpoint, body, raw, draft)
    if isinstance(fitting, Failure):
        return chain.give_up(fitting, draft)
    return await chain.run(request, state, config, fitting, endpoint, body, draft)
