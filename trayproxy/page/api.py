"""The routing log's JSON API: recent records (memory + history), one record, usage, and a
live event stream for the page."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from trayproxy.gateway.errors import error_response
from trayproxy.gateway.state import STATE, ProxyState
from trayproxy.records import queries
from trayproxy.records.logbook import RouteRecord

PING_SECONDS = 15.0
MAX_QUEUED_EVENTS = 1000


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be an integer") from None
    return max(low, min(value, high))


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


async def logs(request: web.Request) -> web.Response:
    """Newest first: this run's records from memory, earlier ones from the history."""
    state = request.app[STATE]
    try:
        limit = _int(request, "limit", 100, 1, 5000)
    except web.HTTPBadRequest as exc:
        return error_response(400, exc.reason, code="invalid_limit", param="limit")
    model = request.query.get("model") or None
    provider = request.query.get("provider") or None
    status = request.query.get("status") or None
    live = [r.to_dict() for r in state.logbook.recent()]
    rows = [r for r in live if queries.matches(r, model, provider, status)][:limit]
    if state.history is not None and len(rows) < limit:
        stored = await _stored(state, limit, model, provider, status)
        seen = {r["uid"] for r in live}
        rows += [r for r in stored if r["uid"] not in seen]
        rows.sort(key=lambda r: r["time"], reverse=True)
    return web.json_response({"object": "list", "data": rows[:limit]})


async def _stored(
    state: ProxyState, limit: int, model: str | None, provider: str | None, status: str | None
) -> list[dict[str, Any]]:
    assert state.history is not None
    try:
        return await _in_thread(
            queries.recent,
            state.history.path,
            limit,
            model=model,
            provider=provider,
            status=status,
        )
    except Exception:  # a damaged or missing database must not break the page
        return []


async def log_detail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    uid = request.match_info["uid"]
    for r in state.logbook.recent():
        if r.uid == uid:
            return web.json_response(r.to_dict())
    if state.history is not None:
        try:
            found = await _in_thread(queries.get, state.history.path, uid)
        except Exception:
            found = None
        if found:
            return web.json_response(found)
    return error_response(404, f"No request {uid!r} in the log.", code="not_found")


async def usage(request: web.Request) -> web.Response:
    state = request.app[STATE]
    days = _int(request, "days", 7, 1, 365)
    try:
        if state.history is None:  # no database (a bare ProxyServer): this run only
            data = await _in_thread(queries.usage_of, state.logbook.recent(), days)
        else:
            history = state.history

            def read() -> dict[str, Any]:
                history.flush(1.0)  # what was answered so far, even if not written yet
                return queries.usage(history.path, days)

            data = await _in_thread(read)
    except Exception as exc:
        return error_response(503, f"The history cannot be read: {exc}", code="history_unavailable")
    data["daily_budget"] = state.config.costs.daily_budget  # dollars, or None
    return web.json_response(data)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``data:`` line per new record, a comment every 15 s."""
    state = request.app[STATE]
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    queue: asyncio.Queue[RouteRecord] = asyncio.Queue(MAX_QUEUED_EVENTS)
    loop = asyncio.get_running_loop()

    def offer(record: RouteRecord) -> None:
        if queue.full():  # a stalled page loses the oldest events, never memory
            queue.get_nowait()
        queue.put_nowait(record)

    unsubscribe = state.logbook.subscribe(lambda r: loop.call_soon_threadsafe(offer, r))
    try:
        await resp.write(b"retry: 2000\n\n")
        while not state.stopping:
            try:
                record = await asyncio.wait_for(queue.get(), PING_SECONDS)
            except asyncio.TimeoutError:
                await resp.write(b": ping\n\n")
                continue
            await resp.write(b"data: " + json.dumps(record.to_dict()).encode() + b"\n\n")
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        unsubscribe()
    return resp


async def continue_yaml(request: web.Request) -> web.Response:
    """The Continue config.yaml for the page's "Copy Continue config" button."""
    from trayproxy.clients.continue_config import render

    state = request.app[STATE]
    return web.Response(
        text=render(state.config, state.base_url),
        content_type="text/yaml",
        headers={"Cache-Control": "no-store"},
    )


async def claude_code_env(request: web.Request) -> web.Response:
    """The shell lines for the page's "Copy Claude Code setup" button."""
    from trayproxy.clients import claude_code

    state = request.app[STATE]
    return web.Response(
        text=claude_code.shell(state.config, state.base_url.removesuffix("/v1")),
        content_type="text/plain",
        headers={"Cache-Control": "no-store"},
    )


async def codex_toml(request: web.Request) -> web.Response:
    """The ~/.codex/config.toml block for the page's "Copy Codex config" button."""
    from trayproxy.clients import codex_config

    state = request.app[STATE]
    return web.Response(
        text=codex_config.render(state.config, state.base_url),
        content_type="text/plain",
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_trayproxy/api/continue-config", continue_yaml)
    r.add_get("/_trayproxy/api/claude-code", claude_code_env)
    r.add_get("/_trayproxy/api/codex", codex_toml)
    r.add_get("/_trayproxy/api/logs", logs)
    r.add_get("/_trayproxy/api/logs/{uid}", log_detail)
    r.add_get("/_trayproxy/api/usage", usage)
    r.add_get("/_trayproxy/api/events", events)
