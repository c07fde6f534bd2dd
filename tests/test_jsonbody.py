"""Large bodies take orjson's fast path and keep the standard library's meaning."""

from __future__ import annotations

import json

import pytest

from trayproxy.core import jsonbody

PAD = "x" * (200 * 1024)


def big(extra: str) -> bytes:
    return (
        '{"model":"m","messages":[{"role":"user","content":"' + PAD + '"}]' + extra + "}"
    ).encode()


def test_large_body_parses_like_the_standard_library() -> None:
    raw = big(',"seed":12345678901234567890123,"temperature":0.7,"n":1')
    body = jsonbody.loads(raw)
    assert body["seed"] == 12345678901234567890123  # exact, not a float
    assert body == json.loads(raw)
    again = jsonbody.dumps(body)
    assert json.loads(again) == body


@pytest.mark.parametrize("bad", [',"t":NaN', ',"t":1e999', ',"t":-Infinity'])
def test_large_body_refuses_what_small_ones_refuse(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonbody.loads(big(bad))
    with pytest.raises(ValueError):
        jsonbody.loads(('{"t":' + bad.split(":", 1)[1] + "}").encode())


def test_lone_surrogate_survives_a_large_body() -> None:
    raw = big(',"name":"\\ud83d"')
    body = jsonbody.loads(raw)
    assert body["name"] == "\ud83d"
    out = jsonbody.dumps(body)
    assert b"\\ud83d" in out and json.loads(out)["name"] == "\ud83d"
