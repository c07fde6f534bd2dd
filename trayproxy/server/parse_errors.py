"""OpenAI-shaped errors for requests aiohttp cannot even parse (huge or malformed headers).

aiohttp answers those itself, in plain text, and logs a traceback that quotes the raw
bytes — which may hold a key. This handler answers JSON and logs one line without them.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from trayproxy.gateway.errors import error_response

log = logging.getLogger("trayproxy.requests")


class JsonErrorRequestHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; cannot send an error")
        if status == 500:
            log.error("internal error answering %s", request.remote, exc_info=exc)
            text, code = "trayproxy hit an internal error; see its log.", "internal_error"
        elif isinstance(exc, LineTooLong):
            status, code = 431, "headers_too_large"
            text = "The request line or a header is too long."
        else:
            code = "bad_request"
            text = f"Malformed HTTP request ({type(exc).__name__ if exc else status})."
        if status != 500:
            log.warning("refused a malformed request from %s: %s", request.remote, code)
        resp = error_response(status, text, code=code)
        resp.force_close()
        return resp


class JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


def install(runner: web.AppRunner) -> None:
    """After ``runner.setup()``: make its server answer parse errors in JSON.

    aiohttp has no public hook for this answer: ``web.Server.__call__`` makes a plain
    ``RequestHandler`` for each connection, and ``handle_error`` is its method. So the
    server the runner made becomes this subclass (the only change: the handler it makes),
    and a test (``test_unparseable_requests_get_json_errors``) holds it to aiohttp's
    behaviour on every upgrade."""
    server = runner.server
    if server is not None and type(server) is web.Server:
        server.__class__ = JsonErrorServer
