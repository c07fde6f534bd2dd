"""The aiohttp application: routes, JSON errors, the models list and the logs API."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from trayproxy import __version__
from trayproxy.config.model import Config
from trayproxy.gateway import prices, provider_client
from trayproxy.gateway.errors import error_response, in_client_shape
from trayproxy.gateway.guard import guard
from trayproxy.gateway.handler import RELAY_ENDPOINTS, make_handler
from trayproxy.gateway.state import STATE, ProxyState
from trayproxy.page import api, keys, ui
from trayproxy.routing.resolve import UnknownModelError, resolve

log = logging.getLogger("trayproxy.proxy")

_CREATED = int(time.time())


@web.middleware
async def front(request: web.Request, handler: Any) -> web.StreamResponse:
    """The one middleware: the guard's checks, and every error the client sees as JSON in
    its protocol's shape (one layer, not two, on every request)."""
    try:
        resp = await guard(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = _http_error(request, exc)
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        resp = error_response(
            500, "trayproxy hit an internal error; see its log for details.", code="internal_error"
        )
    return in_client_shape(request, resp)


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        message = (
            f"Unknown path {request.path}. trayproxy serves the OpenAI API and Anthropic's "
            "Messages API under /v1."
        )
        return error_response(404, message, code="not_found")
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        message = f"Method {request.method} is not allowed on {request.path}"
        message += f" (use {allow})." if allow else "."
        return error_response(405, message, code="method_not_allowed", headers={"Allow": allow})
    return error_response(exc.status, exc.reason, code=None)


def _model_entry(config: Config, model_id: str, provider: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": _CREATED,
        "owned_by": provider,
    }
    mapping = config.models.get(model_id)
    if mapping is not None:
        if mapping.max_context_size:
            entry["context_length"] = mapping.max_context_size
        if mapping.max_output_tokens:
            entry["max_output_tokens"] = mapping.max_output_tokens
        if mapping.capabilities:
            entry["capabilities"] = list(mapping.capabilities)
    return entry


async def list_models(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    if "anthropic-version" in request.headers:  # Claude Code, Anthropic's SDKs
        return web.json_response(_anthropic_models(config))
    data = [_model_entry(config, mid, m.provider) for mid, m in config.models.items()]
    return web.json_response({"object": "list", "data": data})


def _anthropic_models(config: Config) -> dict[str, Any]:
    """The model list in Anthropic's shape (``type``, ``display_name``, ``created_at``)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_CREATED))
    data = [
        {"type": "model", "id": mid, "display_name": mid, "created_at": created}
        for mid in config.models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


async def get_model(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    model_id = request.match_info["model_id"]
    try:
        route = resolve(config, model_id)
    except UnknownModelError as exc:
        return error_response(404, exc.message, code="model_not_found", param="model")
    return web.json_response(_model_entry(config, model_id, route.provider.name))


async def index(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "name": "trayproxy",
            "version": __version__,
            "status": "ok",
            "base_url": state.base_url,
            "models": len(state.config.models),
            "hint": "Point your OpenAI-compatible client at base_url.",
        }
    )


async def status_api(request: web.Request) -> web.Response:
    state = request.app[STATE]
    config = state.config
    return web.json_response(
        {
            "name": "trayproxy",
            "version": __version__,
            "base_url": state.base_url,
            "config": config.source,
            "models": len(config.models),
            "providers": {
                name: {
                    "base_url": p.base_url,
                    "key": p.api_key.describe(),
                    "key_missing": p.needs_key,
                }
                for name, p in config.providers.items()
            },
            "started": state.started,
            "actions": sorted(state.actions),
            "autostart": bool(state.autostart_enabled and state.autostart_enabled()),
            "history": (
                None
                if state.history is None
                else {"path": str(state.history.path), "problem": state.history.problem}
            ),
        }
    )


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.session = provider_client.open_session()
    await prices.seed_spend(state)
    try:
        yield
    finally:
        await state.prices.stop()
        await state.session.close()
        state.session = None


def create_app(state: ProxyState) -> web.Application:
    app = web.Application(middlewares=[front])
    app[STATE] = state
    app.cleanup_ctx.append(_client_session)
    r = app.router
    r.add_get("/", index)
    r.add_get("/v1", index)
    for prefix in ("/v1", ""):
        r.add_get(f"{prefix}/models", list_models)
        r.add_get(prefix + "/models/{model_id:.+}", get_model)
        for endpoint in RELAY_ENDPOINTS:
            r.add_post(f"{prefix}/{endpoint}", make_handler(endpoint))
    ui.add_routes(app)
    api.add_routes(app)
    keys.add_routes(app)
    r.add_get("/_trayproxy/api/status", status_api)
    return app
