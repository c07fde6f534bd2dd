"""Errors in the client's protocol: OpenAI's ``{"error": {"message", "type", "param",
"code"}}``, and Anthropic's ``{"type": "error", "error": {"type", "message"}}`` on the
Messages endpoints (made from the OpenAI-shaped ones at the edge, ``in_client_shape``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trayproxy.protocols import messages_errors

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "upstream_error",
    504: "upstream_error",
}


def error_body(
    message: str, *, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = json.dumps(error_body(message, status=status, code=code, param=param))
    resp = web.Response(status=status, text=body, content_type="application/json")
    if status >= 500 and status != 503:
        # trayproxy has already decided: the SDKs' automatic retries would only repeat it.
        resp.headers["x-should-retry"] = "false"
    if headers:
        resp.headers.update(headers)
    return resp


@dataclass
class Failure:
    """The one way a request fails, wherever it fails: a bad request, a provider that cannot
    be reached or answers an error, a stream that breaks off. ``final`` failures end the
    request at once; others let the next route (a fallback) try. ``body`` is the provider's
    own error answer (redacted, JSON), sent instead of one of ours."""

    status: int
    message: str
    code: str | None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    final: bool = False

    def response(self, *, retried: bool = False) -> web.Response:
        """The answer the client sees (before anything else was sent)."""
        headers = dict(self.headers)
        if retried:
            headers["x-should-retry"] = "false"
        if self.body is not None:
            resp = web.Response(status=self.status, body=self.body, headers=headers)
            resp.content_type = "application/json"
            return resp
        return error_response(
            self.status, self.message, code=self.code, param=self.param, headers=headers
        )

    def event(self) -> bytes:
        """The same failure once a stream has begun: its last event (OpenAI's shape)."""
        return sse_error_event(self.message, status=self.status, code=self.code)


MESSAGES_PATHS = ("/messages", "/messages/count_tokens")


def speaks_messages(path: str) -> bool:
    """A request on Anthropic's Messages endpoints (``/v1/messages``, ``/messages``)."""
    return path.rstrip("/").endswith(MESSAGES_PATHS)


_CONTEXT_TOO_LONG = re.compile(
    r"context.{0,20}(length|window)|maximum context|too many tokens|prompt is too long", re.I
)


def _for_responses(resp: web.Response) -> web.Response:
    """An OpenAI-shaped error as Codex reads it on the Responses endpoint: ``error.code``
    ``rate_limit_exceeded`` (with "Please try again in N s." from the provider's
    ``Retry-After``, which Codex waits for), ``insufficient_quota`` or
    ``context_length_exceeded`` (which makes Codex compact the conversation)."""
    try:
        data = json.loads(resp.body) if isinstance(resp.body, (bytes, bytearray)) else None
    except (ValueError, UnicodeDecodeError):
        return resp
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return resp
    message = err["message"]
    if resp.status == 429:
        err["code"] = "rate_limit_exceeded"
        wait = resp.headers.get("Retry-After", "")
        if wait.isdigit() and "try again in" not in message.lower():
            err["message"] = f"{message.rstrip('.')}. Please try again in {wait}s."
    elif resp.status == 402:
        err["code"] = "insufficient_quota"
    elif resp.status == 400 and _CONTEXT_TOO_LONG.search(message):
        err["code"] = "context_length_exceeded"
    else:
        return resp
    out = web.Response(status=resp.status, text=json.dumps(data), content_type="application/json")
    for key, value in resp.headers.items():
        if key.lower() not in ("content-type", "content-length"):
            out.headers.add(key, value)
    return out


def in_client_shape(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """An error answer as the client's protocol has it: on the Messages endpoints, every
    OpenAI-shaped error (the guard's, the relay's, a Chat provider's own) in Anthropic's
    shape, with the same status and headers; on the Responses endpoint, with the codes Codex
    acts on."""
    if resp.status < 400 or not isinstance(resp, web.Response):
        return resp
    if request.path.rstrip("/").endswith("/responses"):
        return _for_responses(resp)
    if not speaks_messages(request.path):
        return resp
    body = resp.body
    try:
        data = json.loads(body) if isinstance(body, (bytes, bytearray)) else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if messages_errors.is_messages_error(data):
        return resp
    message = error_message_from_json(data, 4000) if data is not None else resp.reason or "error"
    out = web.Response(
        status=resp.status,
        text=json.dumps(messages_errors.error_body(resp.status, message)),
        content_type="application/json",
    )
    for key, value in resp.headers.items():
        if key.lower() not in ("content-type", "content-length"):
            out.headers.add(key, value)
    return out


def sse_error_event(message: str, *, status: int, code: str | None = None) -> bytes:
    """An in-stream error, for failures after the response has started."""
    return b"data: " + json.dumps(error_body(message, status=status, code=code)).encode() + b"\n\n"


def error_message_from_body(body: bytes, limit: int = 500) -> str:
    """The human part of an upstream error body, for the routing log."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return text[:limit]
    return error_message_from_json(data, limit)


def error_message_from_json(data: Any, limit: int = 500) -> str:
    """The human part of a decoded upstream error (an object, or a list holding one)."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # [{"error": {...}}], as Gemini's OpenAI endpoint answers
    if isinstance(data, str):
        return data[:limit]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("msg")
            if isinstance(msg, str) and msg:
                return msg[:limit]
        elif isinstance(err, str):
            return err[:limit]
        detail = data.get("detail") or data.get("message")
        if isinstance(detail, str):
            return detail[:limit]
    return json.dumps(data)[:limit]
