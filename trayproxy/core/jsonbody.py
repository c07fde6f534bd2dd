"""JSON for request and answer bodies: the standard library's rules at orjson's speed.

orjson parses and writes several times faster than the ``json`` module (a 4 MiB body: tens
of milliseconds less; see README "Performance"). It is used only where its answer is the same
as the standard library's: it turns integers beyond 64 bits into floats, so a body holding
such a number (seen as a float of that size) is parsed again by ``json``; it refuses lone
surrogates, which ``json`` then handles; and anything orjson cannot encode is encoded by
``json``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_HUGE = 2.0**63  # a float this large may be an integer orjson could not hold


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite_float)


def _stdlib_loads(raw: bytes) -> Any:
    return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


def _has_huge_float(obj: Any) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and abs(item) >= _HUGE:
            return True
    return False


def loads(raw: bytes) -> Any:
    """Parse a request body. Raises ValueError (or UnicodeDecodeError) when it is not JSON;
    NaN, Infinity and numbers out of a double's range are refused."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _stdlib_loads(raw)  # its error message, or a body only json accepts
    if _has_huge_float(obj):
        return _stdlib_loads(raw)
    return obj


def loads_answer(raw: bytes) -> Any:
    """Parse a provider's answer only to read it (usage): no checks needed."""
    return orjson.loads(raw)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate from a client stays an escape sequence."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: json knows them
        pass
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud83d"): keep it as a JSON escape
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")
