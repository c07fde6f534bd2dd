"""The /_trayproxy/ page: the routing log in a browser, and the tray's actions."""

from __future__ import annotations

import asyncio
import html
from importlib import resources

from aiohttp import web

from trayproxy import __version__
from trayproxy.clients import doctor
from trayproxy.gateway.errors import error_response
from trayproxy.gateway.guard import LOOPBACK_NAMES, local_port, origin_allowed
from trayproxy.gateway.state import STATE

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
STATIC = {"app.js": "text/javascript", "app.css": "text/css", "icon.png": "image/png"}


def _static_bytes(name: str) -> bytes:
    if name == "icon.png":
        return resources.files("trayproxy.assets").joinpath("trayproxy.png").read_bytes()
    return resources.files("trayproxy.page").joinpath("web", name).read_bytes()


def render_page(base_url: str, models: int) -> str:
    e = html.escape
    return (
        resources.files("trayproxy.page")
        .joinpath("web", "index.html")
        .read_text(encoding="utf-8")
        .replace("{{base_url}}", e(base_url))
        .replace("{{models}}", f"{models} model" + ("" if models == 1 else "s"))
        .replace("{{version}}", e(__version__))
    )


async def page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = render_page(state.base_url, len(state.config.models))
    return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return web.Response(
        body=_static_bytes(name), content_type=STATIC[name], headers=SECURITY_HEADERS
    )


def _same_origin(request: web.Request) -> bool:
    """Stricter than the guard: only trayproxy's own page, never ``allowed_origins``."""
    origin = request.headers.get("Origin")
    return origin is None or origin_allowed(origin, local_port(request), LOOPBACK_NAMES, ())


def page_post_refused(request: web.Request, what: str) -> web.Response | None:
    """The page's own POSTs only: same origin, JSON (so a form on another site cannot)."""
    if not _same_origin(request):
        return error_response(403, f"Cross-origin requests may not run {what}.", code="forbidden")
    if request.content_type != "application/json":
        return error_response(
            415,
            f"{what.capitalize()} need Content-Type: application/json.",
            code="unsupported_media_type",
        )
    return None


async def action(request: web.Request) -> web.Response:
    """POST /_trayproxy/api/actions/{name}: run a desktop action for the page."""
    refused = page_post_refused(request, "actions")
    if refused is not None:
        return refused
    state = request.app[STATE]
    name = request.match_info["name"]
    fn = state.actions.get(name)
    if fn is None:
        known = ", ".join(sorted(state.actions)) or "none in this mode"
        return error_response(404, f"No action {name!r} (available: {known}).", code="not_found")
    ok, message = await asyncio.get_running_loop().run_in_executor(None, fn)
    return web.json_response({"ok": ok, "message": message})


async def health(request: web.Request) -> web.Response:
    """POST /_trayproxy/api/doctor: check every mapping against its provider's model list."""
    refused = page_post_refused(request, "checks")
    if refused is not None:
        return refused
    state = request.app[STATE]
    assert state.session is not None
    report = await doctor.check(
        state.config, state.session, proxy_for=state.proxy_for, redact=state.redact
    )
    return web.json_response(report.to_dict())


async def to_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/_trayproxy/")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_trayproxy", to_page)
    r.add_get("/_trayproxy/", page)
    r.add_get("/_trayproxy/static/{name}", static)
    r.add_post("/_trayproxy/api/actions/{name}", action)
    r.add_post("/_trayproxy/api/doctor", health)
