"""``POST /v1/messages`` end to end: Claude Code's requests through trayproxy to strict fake
providers that speak only Chat Completions (tests/dialect_upstream.py: Kimi, DeepSeek, Groq,
Mistral, Ollama) and to one that speaks Messages itself (tests/messages_upstream.py), with
the raw streams held to Anthropic's grammar and the official ``anthropic`` SDK as the client.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests import messages_upstream as native
from tests.anthropic_grammar import parse_sse, validate
from tests.conftest import CLIENT_KEY, http, settled
from tests.dialect_upstream import ANSWER_PREFIX, GOOD_KEY, TOOL_IDS, DialectUpstream
from tests.test_messages_translation import READ_FILE, claude_code_body
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

# client id -> (provider, upstream model, the fake's flavour)
CHAT_ONLY = {
    "nvidia/kimi-k2-thinking": ("nvidia", "kimi-k2-thinking", "kimi"),
    "deepseek/reasoner": ("deepseek", "deepseek-reasoner", "deepseek"),
    "groq/gpt-oss-120b": ("groq", "groq-gpt-oss", "groq"),
    "mistral/large": ("mistral", "mistral-large", "mistral"),
    "ollama/qwen3": ("ollama", "ollama-qwen3", "ollama"),
}
CLAUDE_HEADERS = {
    "Content-Type": "application/json",
    "x-api-key": CLIENT_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-app": "cli",
}
TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def config_text(chat_url: str, native_url: str) -> str:
    lines = ['[server]\nhost = "127.0.0.1"\nport = 0\n']
    for provider in ("nvidia", "deepseek", "groq", "mistral", "ollama"):
        lines += [
            f"[providers.{provider}]",
            f'base_url = "{chat_url}/v1"',
            f'api_key = "{GOOD_KEY}"',
            f'profile = "{provider}"',
        ]
        if provider in ("deepseek", "ollama"):  # these fakes speak Chat Completions only
            lines.append('messages_base = ""')
        lines.append("")
    lines += [
        # Moonshot's Anthropic endpoint (/anthropic/v1/messages), and Anthropic itself
        "[providers.moonshot]",
        f'base_url = "{native_url}/v1"',
        f'api_key = "{native.GOOD_KEY}"',
        'profile = "moonshot"',
        "",
        "[providers.anthropic]",
        f'base_url = "{native_url}/v1"',
        f'api_key = "{native.GOOD_KEY}"',
        'profile = "anthropic"',
        "",
    ]
    for client_id, (provider, upstream, _) in CHAT_ONLY.items():
        lines += [f'[models."{client_id}"]', f'provider = "{provider}"', f'model = "{upstream}"']
    for provider in ("moonshot", "anthropic"):
        for model in native.MODELS:
            lines += [
                f'[models."{provider}/{model}"]',
                f'provider = "{provider}"',
                f'model = "{model}"',
            ]
    return "\n".join(lines) + "\n"


class Setup:
    def __init__(self) -> None:
        self.chat = DialectUpstream().start()
        self.native = native.MessagesUpstream().start()
        self.server = ProxyServer(
            parse(config_text(self.chat.url, self.native.url), file="messages.toml")
        )
        self.server.start()
        self.last_id = -1

    @property
    def url(self) -> str:
        return self.server.root_url

    def post(self, body: dict[str, Any], path: str = "/v1/messages?beta=true"):
        self.mark()
        return http("POST", self.url + path, json.dumps(body).encode(), CLAUDE_HEADERS)

    def stream(self, body: dict[str, Any]) -> dict[str, Any]:
        """A streamed request, its raw events held to the grammar; the message they make."""
        status, headers, raw = self.post({**body, "stream": True})
        assert status == 200, raw
        assert headers["Content-Type"].startswith("text/event-stream")
        return validate(parse_sse(raw))

    def mark(self) -> None:
        """Remember the newest record once every earlier request has filed its own:
        ``record`` waits for the next one."""
        deadline = time.monotonic() + 5
        while self.server.in_flight and time.monotonic() < deadline:
            time.sleep(0.005)
        newest = self.server.logbook.recent(1)
        self.last_id = newest[0].id if newest else -1

    def record(self) -> dict[str, Any]:
        """The newest request's record (waiting for it: a client can finish reading a stream
        a moment before the handler files it)."""
        settled(self.server.logbook)
        deadline = time.monotonic() + 5
        while self.server.logbook.recent(1)[0].id == self.last_id:
            assert time.monotonic() < deadline, "no new record"
            time.sleep(0.01)
        record = self.server.logbook.recent(1)[0]
        self.last_id = record.id
        return record.to_dict()

    def sdk(self) -> anthropic.Anthropic:
        self.mark()
        return anthropic.Anthropic(base_url=self.url, api_key=CLIENT_KEY, max_retries=0)

    def stop(self) -> None:
        self.server.stop(grace=1)
        self.chat.stop()
        self.native.stop()


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = Setup()
    yield s
    s.stop()


def first_turn(model: str) -> dict[str, Any]:
    return claude_code_body(model=model)


def second_turn(body: dict[str, Any], content: list[dict[str, Any]], tool_id: str):
    """The next request, as Claude Code makes it: the assistant's blocks as it got them, then
    the tool's result."""
    result = {"type": "tool_result", "tool_use_id": tool_id, "content": "hello from the file"}
    messages = [
        *body["messages"],
        {"role": "assistant", "content": content},
        {"role": "user", "content": [result]},
    ]
    return {**body, "messages": messages}


def blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's blocks as a client sends them back (no ``partial_json`` leftovers)."""
    out = []
    for block in message["content"]:
        keep = {"text": ("type", "text"), "thinking": ("type", "thinking", "signature")}
        keys = keep.get(block["type"], ("type", "id", "name", "input"))
        out.append({k: block[k] for k in keys})
    return out


@pytest.mark.parametrize("client_id", list(CHAT_ONLY))
def test_claude_code_s_tool_round_trip_through_a_chat_only_provider(
    setup: Setup, client_id: str
) -> None:
    flavor = CHAT_ONLY[client_id][2]
    body = first_turn(client_id)
    message = setup.stream(body)
    kinds = [b["type"] for b in message["content"]]
    assert kinds[-1] == "tool_use"
    assert ("thinking" in kinds) == (flavor != "mistral")  # Mistral's fake does not think
    call = message["content"][-1]
    assert call["name"] == "read_file" and call["input"] == {"path": "README.md"}
    assert TOOL_ID.fullmatch(call["id"])
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] > 0
    first = setup.record()
    assert first["endpoint"] == "messages" and first["status"] == 200
    assert "Anthropic Messages → Chat Completions" in first["rewrites"]
    dropped = next(r for r in first["rewrites"] if r.startswith("dropped: "))
    assert "cache_control" in dropped and "server tool web_search_20250305" in dropped
    assert any(
        r.startswith("anthropic-beta not sent: claude-code-20250219") for r in first["rewrites"]
    )

    # the second turn: the strict fakes refuse it unless the provider's own tool id and
    # (Kimi, DeepSeek) the reasoning come back
    answer = setup.stream(second_turn(body, blocks(message), call["id"]))
    assert [b["type"] for b in answer["content"]][-1] == "text"
    assert answer["content"][-1]["text"] == ANSWER_PREFIX + "hello from the file"
    assert answer["stop_reason"] == "end_turn"
    sent = setup.chat.requests[-1]
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    tool = next(m for m in sent["messages"] if m["role"] == "tool")
    assert assistant["tool_calls"][0]["id"] == TOOL_IDS[flavor] == tool["tool_call_id"]
    if flavor in ("kimi", "deepseek"):
        assert assistant["reasoning_content"]
    assert all(m["role"] != "system" for m in sent["messages"][1:])
    assert CLIENT_KEY not in json.dumps(sent)


def test_the_anthropic_sdk_streams_calls_tools_and_reads_whole_answers(setup: Setup) -> None:
    client = setup.sdk()
    ask = {
        "model": "nvidia/kimi-k2-thinking",
        "max_tokens": 2048,
        "tools": [READ_FILE],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "What does the README say?"}],
    }
    with client.messages.stream(**ask) as stream:
        texts = list(stream.text_stream)
        first = stream.get_final_message()
    assert texts == [] or all(isinstance(t, str) for t in texts)
    assert not texts  # the Kimi-like agent's first turn: thinking and a tool call, no text
    # the text the SDK streamed is the text of the message it assembled
    assert "".join(texts) == "".join(b.text for b in first.content if b.type == "text")
    call = next(b for b in first.content if b.type == "tool_use")
    thinking = next(b for b in first.content if b.type == "thinking")
    assert thinking.thinking and thinking.signature
    follow = {
        **ask,
        "messages": [
            *ask["messages"],
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "hi"}],
            },
        ],
    }
    answer = client.messages.create(**follow)  # not streamed
    assert answer.content[-1].text == ANSWER_PREFIX + "hi"
    assert answer.stop_reason == "end_turn" and answer.usage.input_tokens > 0
    assert answer.model == "nvidia/kimi-k2-thinking"


def test_count_tokens_and_the_model_list_answer_in_anthropic_s_shape(setup: Setup) -> None:
    client = setup.sdk()
    short = client.messages.count_tokens(
        model="nvidia/kimi-k2-thinking", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="nvidia/kimi-k2-thinking",
        messages=[{"role": "user", "content": "hi " * 500}],
        tools=[READ_FILE],
    )
    assert 0 < short.input_tokens < long.input_tokens
    record = setup.record()
    assert record["endpoint"] == "messages/count_tokens" and record["status"] == 200
    assert record["prompt_tokens"] is None  # a count asked for is not tokens used
    assert f"counted by trayproxy: about {long.input_tokens} input tokens" in record["rewrites"][-1]
    ids = [m.id for m in client.models.list()]
    assert "nvidia/kimi-k2-thinking" in ids and "anthropic/claude-fake-agent" in ids


def test_errors_come_in_anthropic_s_shape(setup: Setup) -> None:
    client = setup.sdk()
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(
            model="nvidai/kimi-k2-thinking",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
        )
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "not_found_error"
    assert "nvidia/kimi-k2-thinking" in err.value.body["error"]["message"]  # the near match
    status, _, raw = setup.post({"max_tokens": 5, "messages": []})
    assert status == 400
    assert json.loads(raw)["error"] == {
        "type": "invalid_request_error",
        "message": "You must provide a model parameter (a model id as a string).",
    }
    status, _, raw = http("POST", setup.url + "/v1/messages", b"{}", {"Content-Type": "text/plain"})
    assert status == 415 and json.loads(raw)["type"] == "error"


def test_messages_pass_through_to_a_provider_that_speaks_them(setup: Setup) -> None:
    body = claude_code_body(
        model="moonshot/claude-fake-agent",
        thinking={"type": "enabled", "budget_tokens": 2048},
        temperature=1,
        tools=[READ_FILE],
    )
    body["messages"] = body["messages"][:1]  # the fake, like Anthropic, takes no system role
    message = setup.stream(body)
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    seen = setup.native.last
    assert seen.path == "/anthropic/v1/messages"
    assert seen.body == {**body, "stream": True, "model": "claude-fake-agent"}  # nothing else
    assert seen.headers["Authorization"] == f"Bearer {native.GOOD_KEY}"
    assert "x-api-key" not in {k.lower() for k in seen.headers}  # the client's stays here
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == CLAUDE_HEADERS["anthropic-beta"]
    record = setup.record()
    assert "Anthropic Messages passed through (the provider speaks it)" in record["rewrites"]
    assert record["prompt_tokens"] and record["completion_tokens"]  # from the events' usage

    # the second turn: the fake checks the thinking block's signature came back unchanged
    answer = setup.stream(second_turn(body, blocks(message), message["content"][-1]["id"]))
    assert answer["content"][-1]["text"] == native.ANSWER_PREFIX + "hello from the file"


def test_anthropic_itself_gets_the_key_as_x_api_key(setup: Setup) -> None:
    answer = setup.sdk().messages.create(
        model="anthropic/claude-fake-agent",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert answer.stop_reason == "tool_use"
    seen = setup.native.last
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == native.GOOD_KEY
    assert "Authorization" not in seen.headers


def test_a_native_provider_s_overload_and_rate_limit_reach_the_client_as_anthropic_says(
    setup: Setup,
) -> None:
    client = setup.sdk()
    ask = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.create(model="moonshot/overloaded", **ask)
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="moonshot/rate-limited", **ask)
    assert limited.value.response.headers["retry-after"] == native.RETRY_AFTER


def test_a_stream_that_fails_midway_ends_with_an_error_event(setup: Setup) -> None:
    status, _, raw = setup.post(
        {
            "model": "moonshot/die-midstream",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert status == 200
    message = validate(parse_sse(raw))
    assert message["error"]["type"] == "api_error"


def test_an_error_event_before_any_content_is_an_http_error(setup: Setup) -> None:
    """The provider's stream says "overloaded" before any content: nothing reached the client,
    so it gets the failure as an HTTP answer (a fallback could have answered instead)."""
    status, _, raw = setup.post(
        {
            "model": "moonshot/error-midstream",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert status == 503
    error = json.loads(raw)
    assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
    assert "Overloaded" in error["error"]["message"]


def test_keep_alives_keep_the_client_company_while_the_provider_is_silent(serve, upstream) -> None:
    """A thinking model says nothing for a while: Claude Code gets SSE comments (the
    anthropic SDK refuses a ``ping`` before ``message_start``, which waits for the first
    content so that a fallback stays possible), then a valid stream."""
    extra = f"""
[providers.patient]
base_url = "{upstream.url}/v1"
api_key = ""
keepalive_seconds = 0.1
"""
    server = serve(extra=extra)
    body = {"model": "patient/late", "max_tokens": 50, "stream": True}  # first token at 0.5 s
    body["messages"] = [{"role": "user", "content": "hi"}]
    status, _, raw = http(
        "POST", server.root_url + "/v1/messages", json.dumps(body).encode(), CLAUDE_HEADERS
    )
    assert status == 200
    before, _, _ = raw.partition(b"event: message_start")
    assert before.count(b": keep-alive\n\n") >= 3 and before.strip(b": keep-alive\n") == b""
    events = parse_sse(raw)
    assert events[0][0] == "message_start"
    message = validate(events)
    assert message["content"][0]["text"] == "Hello from the fake upstream."


@pytest.mark.parametrize(
    "model", ["nvidia/kimi-k2-thinking", "mistral/large", "moonshot/claude-fake-agent"]
)
def test_anthropic_s_npm_sdk_runs_a_tool_conversation(setup: Setup, model: str) -> None:
    """@anthropic-ai/sdk (the SDK Claude Code is built on) through trayproxy: translated for
    Kimi and Mistral, passed through for a provider that speaks Messages."""
    from tests.test_continue_client import JS_DIR, node_executable

    done = subprocess.run(
        [
            node_executable(),
            str(JS_DIR / "anthropic_agent.mjs"),
            "--base-url",
            setup.url,
            "--model",
            model,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tool"]["name"] == "read_file" and result["tool"]["input"] == {
        "path": "README.md"
    }
    assert TOOL_ID.fullmatch(result["tool"]["id"])
    assert result["stop"] == ["tool_use", "end_turn"]
    assert result["usage"][0] > 0 and result["usage"][1] > 0
    prefix = native.ANSWER_PREFIX if model.startswith("moonshot/") else ANSWER_PREFIX
    assert result["text"] == prefix + "trayproxy routes model ids to providers."
    if not model.startswith("mistral/"):
        assert result["first"][0] == "thinking"


@pytest.mark.parametrize("client_id", ["nvidia/kimi-k2-thinking", "deepseek/reasoner"])
def test_reasoning_a_client_dropped_is_put_back_from_memory(setup: Setup, client_id: str) -> None:
    """A client that sends the tool turn back without its thinking block: Kimi and DeepSeek
    refuse that, so trayproxy puts back the reasoning it saw stream by."""
    body = first_turn(client_id)
    message = setup.stream(body)
    call = message["content"][-1]
    without = [b for b in blocks(message) if b["type"] != "thinking"]
    answer = setup.stream(second_turn(body, without, call["id"]))
    assert answer["content"][-1]["text"] == ANSWER_PREFIX + "hello from the file"
    notes = setup.record()["rewrites"]
    assert any(r.startswith("reasoning_content restored") for r in notes), notes[-4:]


def test_a_chat_provider_s_rate_limit_reaches_claude_code_as_anthropic_s(serve) -> None:
    server = serve()
    client = anthropic.Anthropic(base_url=server.root_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(
            model="fake/error-429", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.body["error"]["type"] == "rate_limit_error"
    assert err.value.response.headers["retry-after"] == "7"  # the provider's, passed on
    assert "fake upstream says 429" in err.value.body["error"]["message"]


def test_a_native_provider_gets_the_token_cap_and_no_signatures_it_never_made() -> None:
    """Passed through untouched but for two things: max_tokens clamped to the mapping's
    max_output_tokens, and thinking blocks trayproxy signed on a translated turn removed."""
    from trayproxy.gateway.translate import _for_native
    from trayproxy.protocols.messages_answer import signature

    body = {
        "model": "m",
        "max_tokens": 32000,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": signature("t")},
                    {"type": "thinking", "thinking": "u", "signature": "EqQBCkYIBxgC"},
                    {"type": "text", "text": "ok"},
                ],
            },
        ],
    }
    notes: list[str] = []
    out = _for_native(body, "messages", 8192, notes)
    assert out["max_tokens"] == 8192
    kept = out["messages"][1]["content"]
    assert [b.get("signature") for b in kept] == ["EqQBCkYIBxgC", None]
    assert notes == [
        "max_tokens 32000 → 8192 (the model's max_output_tokens)",
        "thinking blocks from a translated turn removed (1)",
    ]
    assert body["max_tokens"] == 32000  # the client's body is not changed
