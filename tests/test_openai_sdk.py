"""The real ``openai`` Python SDK against trayproxy, with a fake provider behind it."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, Proxy, http, settled
from tests.fake_upstream import WORDS

ANSWER = "".join(WORDS)
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client_for(proxy: Proxy, with_v1: bool = True) -> openai.OpenAI:
    base = proxy.base_url if with_v1 else proxy.root_url
    return openai.OpenAI(base_url=base, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def assert_upstream_saw_mapping(proxy: Proxy, path: str, model: str) -> None:
    seen = proxy.upstream.last
    assert seen.path == path
    assert seen.body["model"] == model
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_KEY not in json.dumps(seen.headers)


def logs(proxy: Proxy) -> list[dict]:
    settled(proxy.server.logbook)
    status, _, body = http("GET", proxy.root_url + "/_trayproxy/api/logs")
    assert status == 200
    return json.loads(body)["data"]


@pytest.mark.parametrize("with_v1", [True, False], ids=["v1", "bare"])
def test_chat_non_stream(proxy: Proxy, with_v1: bool) -> None:
    client = client_for(proxy, with_v1)
    reply = client.chat.completions.create(model="nvidia/kimi-k2-thinking", messages=MESSAGES)
    assert reply.choices[0].message.content == ANSWER
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    assert_upstream_saw_mapping(proxy, "/v1/chat/completions", "moonshotai/kimi-k2-thinking")
    [record] = logs(proxy)
    assert record["client_model"] == "nvidia/kimi-k2-thinking"
    assert record["provider"] == "fake"
    assert record["upstream_model"] == "moonshotai/kimi-k2-thinking"
    assert record["endpoint"] == "chat/completions"
    assert record["stream"] is False
    assert record["status"] == 200
    assert (record["prompt_tokens"], record["completion_tokens"]) == (11, 6)
    assert record["ttfb_ms"] is not None and record["duration_ms"] >= record["ttfb_ms"]
    assert record["error"] is None


@pytest.mark.parametrize("with_v1", [True, False], ids=["v1", "bare"])
def test_chat_stream(proxy: Proxy, with_v1: bool) -> None:
    client = client_for(proxy, with_v1)
    stream = client.chat.completions.create(
        model="nvidia/kimi-k2-thinking",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=4096,
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == ANSWER
    assert usage is not None and usage.prompt_tokens == 11
    assert_upstream_saw_mapping(proxy, "/v1/chat/completions", "moonshotai/kimi-k2-thinking")
    assert proxy.upstream.last.body["max_tokens"] == 4096
    [record] = logs(proxy)
    assert record["stream"] is True
    assert (record["prompt_tokens"], record["completion_tokens"]) == (11, 6)


def test_stream_is_not_buffered(proxy: Proxy) -> None:
    """The client holds the first chunk before the upstream has sent its last."""
    client = client_for(proxy)
    stream = client.chat.completions.create(model="fake/gated", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.content == WORDS[0]
    assert not proxy.upstream.sent_last.is_set()
    proxy.upstream.gate.set()
    rest = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert WORDS[0] + rest == ANSWER
    assert proxy.upstream.sent_last.is_set()


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions(proxy: Proxy, stream: bool) -> None:
    client = client_for(proxy)
    if stream:
        text = "".join(
            c.choices[0].text
            for c in client.completions.create(
                model="nvidia/kimi-k2-thinking", prompt="def f(", stream=True, stop=["\n\n"]
            )
            if c.choices
        )
    else:
        text = (
            client.completions.create(model="nvidia/kimi-k2-thinking", prompt="def f(")
            .choices[0]
            .text
        )
    assert text == ANSWER
    assert_upstream_saw_mapping(proxy, "/v1/completions", "moonshotai/kimi-k2-thinking")


def test_embeddings_base64_passes_through(proxy: Proxy) -> None:
    client = client_for(proxy)
    result = client.embeddings.create(model="fake/embed", input=["a", "b"])
    assert [d.embedding for d in result.data] == [[0.25, -0.5, 1.0, 2.0]] * 2
    assert proxy.upstream.last.body["encoding_format"] == "base64"
    assert_upstream_saw_mapping(proxy, "/v1/embeddings", "text-embedding-upstream")
    raw = (
        client.embeddings.create(model="fake/embed", input="a", encoding_format="base64")
        .data[0]
        .embedding
    )
    assert isinstance(raw, str)  # asked for base64, got base64 (a float array breaks Continue)
    assert list(struct.unpack("<4f", base64.b64decode(raw))) == [0.25, -0.5, 1.0, 2.0]


@pytest.mark.parametrize("with_v1", [True, False], ids=["v1", "bare"])
def test_models_list_and_retrieve(proxy: Proxy, with_v1: bool) -> None:
    client = client_for(proxy, with_v1)
    ids = [m.id for m in client.models.list()]
    assert "nvidia/kimi-k2-thinking" in ids and "fake/embed" in ids
    model = client.models.retrieve("nvidia/kimi-k2-thinking")
    assert model.id == "nvidia/kimi-k2-thinking"
    assert model.owned_by == "fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    assert proxy.upstream.requests == []  # listing never calls the provider


def test_rerank_is_relayed(proxy: Proxy) -> None:
    """(The Responses API is translated for providers that do not serve it: its own tests.)"""
    from tests.conftest import post_json

    body = {"model": "nvidia/kimi-k2-thinking", "query": "q", "documents": ["a"], "input": "x"}
    status, _, _ = post_json(f"{proxy.base_url}/rerank", body)
    assert status == 200
    assert_upstream_saw_mapping(proxy, "/v1/rerank", "moonshotai/kimi-k2-thinking")
    assert proxy.upstream.last.body["query"] == "q"


def test_provider_prefix_route_is_recorded(proxy: Proxy) -> None:
    client = client_for(proxy)
    client.chat.completions.create(model="fake/some-new-model", messages=MESSAGES)
    assert proxy.upstream.last.body["model"] == "some-new-model"
    [record] = logs(proxy)
    assert record["rule"] == "provider-prefix"
    assert any("provider prefix" in r for r in record["rewrites"])


def test_keys_never_reach_logs_or_records(proxy: Proxy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    client = client_for(proxy)
    client.chat.completions.create(model="nvidia/kimi-k2-thinking", messages=MESSAGES)
    list(
        client.chat.completions.create(
            model="nvidia/kimi-k2-thinking", messages=MESSAGES, stream=True
        )
    )
    _, _, body = http("GET", proxy.root_url + "/_trayproxy/api/logs")
    _, _, status = http("GET", proxy.root_url + "/_trayproxy/api/status")
    for text in (caplog.text, body.decode(), status.decode(), repr(proxy.server.config)):
        assert UPSTREAM_KEY not in text
        assert CLIENT_KEY not in text
    lines = [r.getMessage() for r in caplog.records if r.name == "trayproxy.requests"]
    assert len(lines) == 2  # one line per request
    assert all("nvidia/kimi-k2-thinking -> fake:moonshotai/kimi-k2-thinking" in x for x in lines)
    record = json.loads(body)["data"][0]
    assert "removed headers: authorization" in record["rewrites"]
    assert "added headers: authorization" in record["rewrites"]
