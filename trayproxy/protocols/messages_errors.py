"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``, as an
answer's body and as a stream's ``event: error``."""

from __future__ import annotations

from typing import Any

from trayproxy.core.jsonbody import dumps

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status (its clients act on the type: they wait and
    retry ``rate_limit_error`` and ``overloaded_error``)."""
    return _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def error_event(status: int, message: str) -> bytes:
    """The last event of a stream that failed after it began."""
    return b"event: error\ndata: " + dumps(error_body(status, message)) + b"\n\n"


def is_messages_error(obj: Any) -> bool:
    """Already in Anthropic's shape (a provider that speaks Messages answered it)."""
    return (
        isinstance(obj, dict) and obj.get("type") == "error" and isinstance(obj.get("error"), dict)
    )
