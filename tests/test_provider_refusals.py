"""What a provider's refusal does to its key and to the request: a 403 about the prompt
(moderation) is passed on and sets nothing aside; an error event before any content lets a
fallback answer; today's budget is said once, and not again after a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.conftest import settled
from tests.serving import ServerThread
from trayproxy.config.parse import parse
from trayproxy.gateway.prices import DailySpend
from trayproxy.server.proxy_server import ProxyServer

KEY = "sk-refusals-9Qe2Wr5Ty8"
FLAGGED = {"error": {"message": "Your input was flagged by moderation: violence", "code": 403}}


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    event = {"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [choice]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _provider() -> tuple[web.Application, list[str]]:
    """``flagged``: 403 for the prompt; ``sorry``: a role chunk, then an in-stream error
    before any content; any other model streams a short answer."""
    seen: list[str] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        assert request.headers.get("Authorization") == f"Bearer {KEY}"
        body = await request.json()
        model = body["model"]
        seen.append(model)
        if model == "flagged":
            return web.json_response(FLAGGED, status=403)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk(model, {"role": "assistant", "content": ""}))
        if model == "sorry":
            error = {"error": {"message": "Provider returned error: upstream overloaded"}}
            await resp.write(b"data: " + json.dumps(error).encode() + b"\n\n")
            return resp
        await resp.write(_chunk(model, {"content": f"hello from {model}"}))
        await resp.write(_chunk(model, {}, "stop") + b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app, seen


@pytest.fixture
def rig() -> Iterator[tuple[ProxyServer, list[str]]]:
    app, seen = _provider()
    upstream = ServerThread(lambda: app, "refusals-provider")
    url = upstream.start()
    config = parse(
        f"""
[server]
port = 0
[providers.p]
base_url = "{url}/v1"
api_key = "{KEY}"
[models."p/sorry"]
provider = "p"
model = "sorry"
fallbacks = ["p/fine"]
"""
    )
    server = ProxyServer(config)
    server.start()
    try:
        yield server, seen
    finally:
        server.stop()
        upstream.stop()


def _post(server: ProxyServer, model: str, stream: bool) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_403_about_the_prompt_is_passed_on_and_sets_no_key_aside(rig) -> None:
    server, seen = rig
    for _ in range(2):
        status, raw = _post(server, "p/flagged", stream=False)
        assert status == 403
        assert "flagged by moderation" in json.loads(raw)["error"]["message"]
    assert seen == ["flagged", "flagged"]  # the key was not set aside: asked both times
    status, raw = _post(server, "p/other", stream=True)
    assert status == 200 and b"hello from other" in raw


def test_an_error_event_before_any_content_lets_the_fallback_answer(rig) -> None:
    server, seen = rig
    status, raw = _post(server, "p/sorry", stream=True)
    assert status == 200
    assert b"hello from fine" in raw and b"overloaded" not in raw and b'"error"' not in raw
    assert seen == ["sorry", "fine"]
    settled(server.logbook)
    rec = server.logbook.recent(1)[0].to_dict()
    assert [(a["model"], a["status"]) for a in rec["attempts"]] == [("sorry", 503), ("fine", 200)]
    assert "overloaded" in rec["attempts"][0]["error"]


def test_the_budget_is_said_when_a_request_passes_it_once_a_day_and_not_after_a_restart() -> None:
    now = time.time()
    spend = DailySpend()
    assert spend.add(now, 0.6, 1.0) is None
    said = spend.add(now, 0.6, 1.0)
    assert said is not None and "$1.20" in said and "$1.00" in said
    assert spend.add(now, 0.6, 1.0) is None  # once
    assert spend.add(now, 0.6, 2.0) is not None  # a raised budget passed in turn
    restarted = DailySpend(day=spend.day, total=spend.total)  # seeded from the history
    assert restarted.add(now, 0.6, 1.0) is None  # already past it before this run
    assert spend.add(now + 86_400, 0.5, 1.0) is None  # a new day starts from 0
