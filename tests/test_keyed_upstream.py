"""The strict keyed fake provider (tests/keyed_upstream.py) holds to what it promises: each key
behaviour, OpenAI's 400s, the SSE grammar, OpenRouter's /models and the thinkers' timing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.keyed_upstream import (
    ALLOWED_PARAMS,
    CHAT_PATH,
    FORBIDDEN,
    MODELS_PATH,
    OK,
    REASONING,
    REJECTED,
    KeyedUpstream,
    Script,
    Usage,
    behaviour,
    priced,
    rate_limited_body,
    rate_limited_header,
    script_for,
)

MESSAGES = [{"role": "user", "content": "hi"}]
KEYS = {
    "sk-ok": OK,
    "sk-header": rate_limited_header(7),
    "sk-body": rate_limited_body(7.5),
    "sk-rejected": REJECTED,
    "sk-forbidden": FORBIDDEN,
}


@pytest.fixture
def fake() -> Iterator[KeyedUpstream]:
    with KeyedUpstream(KEYS) as upstream:
        yield upstream


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[str]:
        """The SSE events' data; every event must end with a blank line."""
        text = self.body.decode()
        assert text.endswith("\n\n"), text[-80:]
        events = text[:-2].split("\n\n")
        assert all(e.startswith("data: ") and "\n" not in e for e in events), events
        return [e.removeprefix("data: ") for e in events]


def auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


async def _request(
    method: str, url: str, key: str | None, data: bytes | None, headers: dict[str, str]
) -> Answer:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers={**auth(key), **headers}) as resp,
    ):
        return Answer(resp.status, dict(resp.headers), await resp.read())


def post(fake: KeyedUpstream, body: Any, key: str | None = "sk-ok") -> Answer:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return asyncio.run(_request("POST", fake.base_url + "/chat/completions", key, data, headers))


def get_models(fake: KeyedUpstream, key: str | None = None) -> Answer:
    return asyncio.run(_request("GET", fake.base_url + "/models", key, None, {}))


def chat(model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


# ---------------------------------------------------------------- answers and usage


def test_a_normal_model_answers_with_usage_and_is_recorded(fake: KeyedUpstream) -> None:
    fake.usage = Usage(
        prompt_tokens=120, completion_tokens=30, cached_tokens=100, reasoning_tokens=7
    )
    answer = post(fake, chat("vendor/m-1", temperature=0.2))
    assert answer.status == 200
    body = answer.json()
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hello from vendor/m-1",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    seen = fake.last
    assert (seen.key, seen.model, seen.path, seen.status) == ("sk-ok", "vendor/m-1", CHAT_PATH, 200)
    assert seen.body == chat("vendor/m-1", temperature=0.2)
    assert seen.headers["Authorization"] == "Bearer sk-ok"
    assert fake.count() == 1 and fake.requests_with("sk-ok") == [seen]


def test_usage_by_model_overrides_the_default(fake: KeyedUpstream) -> None:
    fake.usage_by_model["cheap"] = Usage(10, 2, 0, 0)
    assert post(fake, chat("cheap")).json()["usage"]["total_tokens"] == 12
    assert post(fake, chat("other")).json()["usage"]["total_tokens"] == 1200


def test_a_stream_without_usage_asked(fake: KeyedUpstream) -> None:
    answer = post(fake, chat("m", stream=True))
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    events = answer.events()
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "hello from m"
    assert len(chunks) == 5  # role, three pieces, finish
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["stop"]
    assert all("usage" not in c for c in chunks)


def test_a_stream_with_usage_asked_ends_with_a_usage_chunk(fake: KeyedUpstream) -> None:
    answer = post(fake, chat("m", stream=True, stream_options={"include_usage": True}))
    events = answer.events()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"] == Usage().to_dict()
    assert all(c["usage"] is None for c in chunks[:-1])  # OpenAI's "usage": null elsewhere
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_include_usage_false_sends_no_usage_chunk(fake: KeyedUpstream) -> None:
    events = post(fake, chat(stream=True, stream_options={"include_usage": False})).events()
    assert all(json.loads(e)["choices"] for e in events[:-1])


# ---------------------------------------------------------------- keys


def test_rate_limited_with_a_retry_after_header(fake: KeyedUpstream) -> None:
    answer = post(fake, chat(), key="sk-header")
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "7"
    error = answer.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "try again" not in error["message"]
    assert fake.last.status == 429 and fake.served() == []


def test_rate_limited_with_the_wait_in_the_body(fake: KeyedUpstream) -> None:
    answer = post(fake, chat("llama-70b"), key="sk-body")
    assert answer.status == 429
    assert "Retry-After" not in answer.headers
    error = answer.json()["error"]
    assert error["message"] == (
        "Rate limit reached for model `llama-70b` in organization `org_fake01` on tokens per "
        "min (TPM): Limit 6000, Used 5990. Please try again in 7.5s."
    )
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    fake.set_key("sk-ms", rate_limited_body(0.6, wait_text="600ms"))
    assert post(fake, chat(), key="sk-ms").json()["error"]["message"].endswith("in 600ms.")


@pytest.mark.parametrize(
    ("key", "status"),
    [("sk-rejected", 401), ("sk-unknown", 401), (None, 401), ("sk-forbidden", 403)],
)
def test_refused_keys(fake: KeyedUpstream, key: str | None, status: int) -> None:
    answer = post(fake, chat(), key=key)
    assert answer.status == status
    error = answer.json()["error"]
    assert error["message"] and error["type"]
    if key in ("sk-rejected", "sk-unknown"):
        assert error == {
            "message": "Invalid API Key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    assert fake.last.key == key and fake.last.status == status


def test_a_key_that_is_not_bearer_counts_as_none(fake: KeyedUpstream) -> None:
    data = json.dumps(chat()).encode()
    headers = {"Authorization": "Basic c2stb2s6"}
    url = fake.base_url + "/chat/completions"
    answer = asyncio.run(_request("POST", url, None, data, headers))
    assert answer.status == 401 and fake.last.key is None


def test_a_key_recovers_while_running(fake: KeyedUpstream) -> None:
    assert post(fake, chat(), key="sk-header").status == 429
    fake.set_key("sk-header", "ok")
    assert post(fake, chat(), key="sk-header").status == 200
    fake.remove_key("sk-header")
    assert post(fake, chat(), key="sk-header").status == 401
    assert [r.status for r in fake.requests_with("sk-header")] == [429, 200, 401]
    assert [r.key for r in fake.served()] == ["sk-header"]
    assert fake.count(key="sk-header", status=200) == 1


def test_an_unknown_behaviour_name_is_refused_with_the_name() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        behaviour("sometimes")
    with pytest.raises(ValueError, match="'nope'"):
        KeyedUpstream({"sk": "nope"})


# ---------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        ([chat()], None),
        ({"messages": MESSAGES}, None),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "m", "messages": [*MESSAGES, {"role": "robot"}]}, "messages[1].role"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        (chat(logit_bias={}), None),
        (chat(thinking={"type": "enabled"}), None),
        (chat(stream="yes"), "stream"),
        (chat(stream_options={"include_usage": True}), "stream_options"),
        (chat(stream=False, stream_options={"include_usage": True}), "stream_options"),
    ],
)
def test_bad_bodies_are_refused_like_openai(fake: KeyedUpstream, body: Any, param: Any) -> None:
    answer = post(fake, body)
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert fake.last.status == 400 and fake.served() == []


def test_an_unknown_parameter_is_named(fake: KeyedUpstream) -> None:
    error = post(fake, chat(thinking={"type": "enabled"})).json()["error"]
    assert error["message"] == "Unrecognized request argument supplied: thinking"


def test_every_chat_completions_parameter_is_accepted(fake: KeyedUpstream) -> None:
    values: dict[str, Any] = {name: None for name in ALLOWED_PARAMS}
    values.update(model="m", messages=MESSAGES, stream=True, stream_options={})
    assert post(fake, values).status == 200


def test_extra_params_widen_what_is_accepted() -> None:
    with KeyedUpstream({"sk-ok": OK}, extra_params=["logit_bias"]) as fake:
        assert post(fake, chat(logit_bias={})).status == 200


def test_the_key_is_checked_before_the_body_and_the_rate_limit_after(
    fake: KeyedUpstream,
) -> None:
    assert post(fake, b"{not json", key="sk-rejected").status == 401
    assert post(fake, {"model": "m"}, key="sk-forbidden").status == 403
    assert post(fake, {"model": "m"}, key="sk-header").status == 400
    assert post(fake, b"[", key="sk-body").status == 400
    assert fake.last.body is None and fake.last.model is None


# ---------------------------------------------------------------- /models


def test_models_is_openrouter_shaped_and_counted(fake: KeyedUpstream) -> None:
    answer = get_models(fake)
    assert answer.status == 200
    data = {m["id"]: m for m in answer.json()["data"]}
    assert data["paid-model"]["pricing"] == {
        "prompt": "0.0000006",
        "completion": "0.0000025",
        "input_cache_read": "0.00000015",
        "request": "0",
        "image": "0",
    }
    assert data["paid-model"]["context_length"] == 131072 and data["paid-model"]["name"]
    assert data["free-model"]["pricing"]["prompt"] == "0"
    assert data["free-model"]["pricing"]["completion"] == "0"
    assert "pricing" not in data["unpriced-model"]
    assert get_models(fake, key="sk-rejected").status == 200  # no key needed: ignored
    assert fake.models_fetches == 2 and fake.count(path=MODELS_PATH, key=None) == 1


def test_models_catalog_can_change_while_running(fake: KeyedUpstream) -> None:
    fake.catalog = [priced("x/y", "0.000001", "0.000002", context_length=8192)]
    data = get_models(fake).json()["data"]
    assert data == [
        {
            "id": "x/y",
            "name": "x/y",
            "context_length": 8192,
            "pricing": {
                "prompt": "0.000001",
                "completion": "0.000002",
                "request": "0",
                "image": "0",
            },
        }
    ]


def test_models_can_need_a_key() -> None:
    with KeyedUpstream({"sk-ok": OK, "sk-no": REJECTED}, models_need_key=True) as fake:
        assert get_models(fake).status == 401
        assert get_models(fake, key="sk-no").status == 401
        assert get_models(fake, key="sk-ok").status == 200
        assert [r.status for r in fake.requests] == [401, 401, 200]
        assert fake.models_fetches == 3


# ---------------------------------------------------------------- thinkers


def test_script_names() -> None:
    assert script_for("plain", {}) == Script()
    assert script_for("think-0.3", {}) == Script(silent_after_role=0.3, reasoning=True)
    assert script_for("slow-2", {}) == Script(headers_after=2.0)
    assert script_for("dies-1.5", {}) == Script(silent_after_role=1.5, dies=True)
    own = Script(headers_after=1, silent_after_role=2, reasoning=True)
    assert script_for("think-0.3", {"think-0.3": own}) == own
    with pytest.raises(ValueError, match="'think-long'"):
        script_for("think-long", {})


def test_a_delay_name_that_does_not_parse_is_a_400(fake: KeyedUpstream) -> None:
    answer = post(fake, chat("dies-soon"))
    assert answer.status == 400 and "dies-soon" in answer.json()["error"]["message"]


async def _timed_stream(url: str, body: dict[str, Any]) -> tuple[float, list[float], list[str]]:
    """(seconds to headers, seconds to each event, the events' data)."""
    start = time.monotonic()
    times: list[float] = []
    events: list[str] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/chat/completions", json=body, headers=auth("sk-ok")) as resp,
    ):
        assert resp.status == 200
        headers_at = time.monotonic() - start
        while True:
            try:
                event = await resp.content.readuntil(b"\n\n")
            except aiohttp.ClientPayloadError:
                break
            if not event:
                break
            times.append(time.monotonic() - start)
            events.append(event.decode().removeprefix("data: ").removesuffix("\n\n"))
    return headers_at, times, events


def test_a_thinker_is_silent_after_its_role_chunk(fake: KeyedUpstream) -> None:
    headers_at, times, events = asyncio.run(
        _timed_stream(fake.base_url, chat("think-0.3", stream=True))
    )
    assert headers_at < 0.2 and times[0] < 0.2
    assert 0.28 <= times[1] - times[0] < 0.8
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[1:-2]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "".join(REASONING)
    assert deltas[0].get("reasoning_content") and deltas[-1].get("content")
    assert "".join(d.get("content", "") for d in deltas) == "hello from think-0.3"


def test_a_slow_model_sends_its_headers_late(fake: KeyedUpstream) -> None:
    headers_at, times, events = asyncio.run(
        _timed_stream(fake.base_url, chat("slow-0.3", stream=True))
    )
    assert 0.28 <= headers_at < 0.8
    assert times[-1] - headers_at < 0.2
    assert events[-1] == "[DONE]"
    assert fake.count(model="slow-0.3", status=200) == 1


def test_a_configured_script_combines_both_delays(fake: KeyedUpstream) -> None:
    fake.scripts["kimi"] = Script(headers_after=0.3, silent_after_role=0.3, reasoning=True)
    headers_at, times, _ = asyncio.run(_timed_stream(fake.base_url, chat("kimi", stream=True)))
    assert 0.28 <= headers_at < 0.6
    assert 0.28 <= times[1] - times[0] < 0.6


def test_a_thinker_not_streamed_answers_after_both_delays(fake: KeyedUpstream) -> None:
    fake.scripts["kimi"] = Script(headers_after=0.2, silent_after_role=0.2, reasoning=True)
    start = time.monotonic()
    message = post(fake, chat("kimi")).json()["choices"][0]["message"]
    assert 0.38 <= time.monotonic() - start < 1.0
    assert message["reasoning_content"] == "".join(REASONING)
    assert message["content"] == "hello from kimi"


def test_a_dying_stream_closes_after_its_role_chunk(fake: KeyedUpstream) -> None:
    start = time.monotonic()
    _, _, events = asyncio.run(_timed_stream(fake.base_url, chat("dies-0.3", stream=True)))
    assert 0.28 <= time.monotonic() - start < 0.8  # closed after its silence
    assert len(events) == 1
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
    assert fake.last.status == 200


def test_a_dying_answer_not_streamed_closes_without_one(fake: KeyedUpstream) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        post(fake, chat("dies-0.2"))
    assert fake.last.status == 0 and fake.served() == []


def test_stopping_does_not_wait_for_a_long_thinker() -> None:
    fake = KeyedUpstream({"sk-ok": OK}).start()

    async def begin() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                fake.base_url + "/chat/completions",
                json=chat("think-30", stream=True),
                headers=auth("sk-ok"),
            ) as resp,
        ):
            await resp.content.readuntil(b"\n\n")
            start = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, fake.stop)
            assert time.monotonic() - start < 2.0

    asyncio.run(begin())


# ---------------------------------------------------------------- on the caller's loop


def test_it_serves_on_the_running_loop_too() -> None:
    async def main() -> None:
        async with KeyedUpstream({"sk-ok": OK, "sk-x": rate_limited_header(3)}) as fake:
            assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/v1")
            async with aiohttp.ClientSession() as session:
                url = fake.base_url + "/chat/completions"
                for key, status in (("sk-x", 429), ("sk-ok", 200)):
                    async with session.post(url, json=chat(), headers=auth(key)) as resp:
                        assert resp.status == status
            assert await fake.wait_until_async(lambda: fake.count() == 2)
            assert [r.key for r in fake.served()] == ["sk-ok"]

    asyncio.run(main())
