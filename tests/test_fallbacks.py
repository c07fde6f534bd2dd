"""Fallbacks and faults: a failing first route hands over to the next, every attempt is
recorded, and nothing is retried once the client has bytes."""

from __future__ import annotations

import json
import logging
import urllib.request

from tests.conftest import (
    CLIENT_KEY,
    MESSAGES,
    UPSTREAM_KEY,
    chat,
    record,
)

FALLBACK = """
[models."primary/broken"]
provider = "fake"
model = "error-500"
fallbacks = ["nvidia/kimi-k2-thinking"]

[models."primary/limited"]
provider = "fake"
model = "error-429"
fallbacks = ["fake/error-503"]

[models."primary/down"]
provider = "down"
model = "x"
fallbacks = ["nokey/model", "nvidia/kimi-k2-thinking"]

[models."primary/dies"]
provider = "fake"
model = "die-midstream"
fallbacks = ["nvidia/kimi-k2-thinking"]

[models."primary/authfail"]
provider = "fake"
model = "auth-echo"
fallbacks = ["nvidia/kimi-k2-thinking"]
"""


def test_5xx_falls_back_and_every_attempt_is_recorded(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    status, headers, body = chat(server, "primary/broken")
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert headers["x-should-retry"] == "false"
    assert [r.body["model"] for r in upstream.requests] == [
        "error-500",
        "moonshotai/kimi-k2-thinking",
    ]
    rec = record(server)
    assert [(a["provider"], a["status"]) for a in rec["attempts"]] == [("fake", 500), ("fake", 200)]
    assert rec["upstream_model"] == "moonshotai/kimi-k2-thinking" and rec["rule"] == "fallback"


def test_unreachable_and_keyless_providers_fall_back(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    status, _, _ = chat(server, "primary/down")
    assert status == 200
    attempts = record(server)["attempts"]
    assert [a["status"] for a in attempts] == [502, 502, 200]
    assert "Cannot reach provider 'down'" in attempts[0]["error"]
    assert "TRAYPROXY_TEST_UNSET_KEY" in attempts[1]["error"]


def test_all_attempts_failing_passes_the_last_on_with_retry_after(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    status, headers, body = chat(server, "primary/limited")
    assert status == 503
    assert json.loads(body)["error"]["message"] == "fake upstream says 503"
    assert headers["x-should-retry"] == "false"
    # the 429 asked for 7 s: the next request does not knock on that provider again
    # (it is skipped while a fallback remains)
    upstream.requests.clear()
    chat(server, "primary/limited")
    assert [r.body["model"] for r in upstream.requests] == ["error-503"]
    assert "skipped: rate-limited" in record(server)["attempts"][0]["error"]


def test_no_retry_after_the_first_byte(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps({"model": "primary/dies", "messages": MESSAGES, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    assert text.count('"Hello"') == 1  # no duplicated text
    assert json.loads(text.strip().split("\n")[-1][6:])["error"]["code"] == "upstream_error"
    assert [r.body["model"] for r in upstream.requests] == ["die-midstream"]


def test_upstream_401_is_502_naming_the_provider_and_hides_the_key(serve, upstream, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve(extra=FALLBACK)
    status, headers, body = chat(
        server, "fake/auth-echo", {"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert status == 502
    err = json.loads(body)["error"]
    assert err["code"] == "upstream_auth_failed"
    assert "Provider 'fake' rejected trayproxy's key" in err["message"]
    assert "[providers.fake]" in err["message"]
    rec = record(server)
    # not retried on a fallback: the key is wrong, a fallback would hide it; and the key is
    # set aside: the next request does not knock with it again
    assert len(upstream.requests) == 1
    status, _, again = chat(server, "primary/authfail")
    assert status == 502 and len(upstream.requests) == 1
    assert "set aside until the config changes" in json.loads(again)["error"]["message"]
    outputs = [again.decode(), json.dumps(record(server))]
    outputs += [body.decode(), json.dumps(rec), caplog.text, json.dumps(dict(headers))]
    for text in outputs:
        assert UPSTREAM_KEY not in text
        for i in range(len(UPSTREAM_KEY) - 7):
            assert UPSTREAM_KEY[i : i + 8] not in text
    assert "[redacted]" in rec["error"]


def test_echoed_keys_in_passed_through_errors_are_hidden(serve) -> None:
    server = serve()
    status, _, body = chat(server, "fake/echo-400")
    assert status == 400
    assert UPSTREAM_KEY not in body.decode() and "[redacted]" in body.decode()
