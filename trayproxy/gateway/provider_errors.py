"""A provider's error answer, as the client will see it. Pure: bytes in, bytes out.

A JSON error object passes through as the provider wrote it (keys redacted by the caller).
What is not one (a CDN's HTML page, plain text, an empty body) becomes an OpenAI-shaped
error with the same status, naming the provider and quoting a short excerpt. Two answers get
words of their own: a 404 because the provider has no such endpoint, and the provider saying
that the model does not exist (with the nearest configured ids when the id was routed by its
provider prefix, the usual place for a typo).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

from trayproxy.gateway.errors import error_body, error_message_from_json

EXCERPT_CHARS = 200

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_NOISE = re.compile(rb"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]*>")
_SPACE = re.compile(r"\s+")

# What servers say when nothing is routed at a path (Go, FastAPI, Express, nginx, OpenAI).
_NO_ROUTE = re.compile(
    r"^\s*(404\b[\s:.-]*)?(page |resource |route )?not found\.?\s*$"
    r"|unknown request url|unrecognized request url|no route|cannot post\b|invalid url"
    r"|no such (path|endpoint|route)|not found for url|endpoint .*not (found|supported)",
    re.IGNORECASE,
)
# What providers say when the model name is not one of theirs.
_NO_MODEL = re.compile(
    r"model\b.*\b(not (be )?found|does ?n[o']t exist|not exist|unknown|invalid|not supported"
    r"|not available|no such|is not a valid)"
    r"|(unknown|invalid|unsupported|nonexistent) model|not a valid model|no such model",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ClientError:
    """What to answer: the body (JSON) and a one-line message for the routing record."""

    body: bytes
    message: str
    code: str | None


def excerpt(data: bytes, content_type: str = "") -> str:
    """A short, readable line of what a provider sent: an HTML page's title (or its text),
    other bytes as text, whitespace collapsed, at most ``EXCERPT_CHARS``."""
    head = data[: 64 * 1024]
    looks_html = _looks_html(data, content_type)
    if looks_html:
        title = _TITLE.search(head)
        if title and title.group(1).strip():
            head = title.group(1)
        else:
            head = _TAG.sub(b" ", _NOISE.sub(b" ", head))
    text = head.decode("utf-8", "replace")
    if looks_html:
        text = html.unescape(text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _looks_html(data: bytes, content_type: str) -> bool:
    return "html" in content_type.lower() or data.lstrip()[:1] == b"<"


_NOT_JSON = object()


def _decoded(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _error_object(found: Any) -> dict[str, Any] | None:
    """The error object in a decoded answer: the answer itself, or the first of a list."""
    if isinstance(found, list) and found and isinstance(found[0], dict):
        found = found[0]
    return found if isinstance(found, dict) else None


def _code(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return ""
    err = obj.get("error")
    code = err.get("code") if isinstance(err, dict) else obj.get("code")
    return code if isinstance(code, str) else ""


def _endpoint_missing(status: int, said: str, obj: dict[str, Any] | None) -> bool:
    """A 404 whose words say the path is unknown (not that a model is)."""
    if status != 404 or _code(obj) == "model_not_found":
        return False
    return bool(_NO_ROUTE.search(said)) and not _NO_MODEL.search(said)


def _model_missing(status: int, said: str, obj: dict[str, Any] | None) -> bool:
    """The provider says the model does not exist (or the key has no access to it)."""
    if status not in (400, 404, 422) or obj is None:
        return False
    return _code(obj) in ("model_not_found", "invalid_model") or bool(_NO_MODEL.search(said))


def _did_you_mean(suggestions: list[str]) -> str:
    if not suggestions:
        return ""
    return " Did you mean " + ", ".join(f"'{s}'" for s in suggestions) + "?"


def explain(
    status: int,
    data: bytes,
    content_type: str,
    *,
    provider: str,
    endpoint: str,
    client_model: str,
    upstream_model: str,
    by_prefix: bool,
    suggestions: list[str],
) -> ClientError:
    """The error the client sees for a provider's ``status`` answer ``data`` (>= 400)."""
    found = _decoded(data) if data.strip() else _NOT_JSON
    obj = _error_object(found)
    said = excerpt(data, content_type) if found is _NOT_JSON else error_message_from_json(found)
    if status == 404 and not data.strip():
        # Some providers answer an unknown model this way too: say both.
        message = (
            f"Provider '{provider}' answered 404 with an empty body: it does not serve "
            f"/{endpoint}, or has no model '{upstream_model}'."
        )
        if by_prefix:
            message += _did_you_mean(suggestions)
        return _made(status, message, "not_found")
    if _endpoint_missing(status, said, obj):
        message = (
            f"Provider '{provider}' does not serve /{endpoint}: it answered 404 ({said}). "
            "Use an endpoint it serves, or map this id to another provider."
        )
        return _made(status, message, "endpoint_not_served")
    if _model_missing(status, said, obj):
        if by_prefix:
            message = (
                f"{said} (provider '{provider}' has no model '{upstream_model}': "
                f"'{client_model}' is not in trayproxy's config and went there by its "
                f"prefix '{provider}/'.{_did_you_mean(suggestions)})"
            )
        else:
            message = (
                f"{said} (trayproxy maps '{client_model}' to '{upstream_model}' at provider "
                f"'{provider}': check model under [models.\"{client_model}\"] in config.toml.)"
            )
        return _made(status, message, "model_not_found", param="model")
    if found is not _NOT_JSON:
        return ClientError(data, said, _code(obj) or None)
    if data.strip():
        kind = "an HTML page" if _looks_html(data, content_type) else "text"
        message = f"Provider '{provider}' answered {status} with {kind}, not JSON: {said}"
    else:
        message = f"Provider '{provider}' answered {status} with an empty body."
    return _made(status, message, f"upstream_{status}")


def too_long(status: int, provider: str, limit: int) -> ClientError:
    """An error answer too long to read whole (an error is a few lines; this is not one)."""
    message = (
        f"Provider '{provider}' answered {status} with an error body over "
        f"{limit // 1024} KiB; trayproxy did not read it all."
    )
    return _made(status, message, f"upstream_{status}")


def _made(status: int, message: str, code: str, param: str | None = None) -> ClientError:
    body = json.dumps(error_body(message, status=status, code=code, param=param)).encode()
    return ClientError(body, message, code)
