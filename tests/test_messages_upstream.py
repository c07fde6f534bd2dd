"""The fake Messages provider, driven by Anthropic's own Python SDK: if the SDK is happy with
it, so is Claude Code, and if it refuses what Anthropic refuses, tests through the proxy are
honest."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.messages_upstream import (
    AGENT,
    ANSWER_PREFIX,
    DIE_MIDSTREAM,
    ERROR_MIDSTREAM,
    FIRST_TEXT,
    GOOD_KEY,
    MAX_TOKENS,
    MESSAGE_ID,
    OVERLOADED,
    RATE_LIMITED,
    RETRY_AFTER,
    THINKING,
    TOOL,
    TOOL_ID,
    TOOL_INPUT,
    TRUNCATED_TEXT,
    MessagesUpstream,
    count_tokens,
    sign,
)

TOOLS = [
    {
        "name": TOOL,
        "description": "Read a file",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    }
]
ASK = [{"role": "user", "content": "What does the README say?"}]
THINK = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(scope="module")
def fake() -> Iterator[MessagesUpstream]:
    upstream = MessagesUpstream().start()
    yield upstream
    upstream.stop()


def client(fake: MessagesUpstream, *, key: str = GOOD_KEY, prefix: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url + prefix, api_key=key, max_retries=0, timeout=5.0)


def dump(blocks: list[Any]) -> list[dict[str, Any]]:
    """Content blocks as a client sends them back: only the wire fields."""
    return [b.model_dump(exclude_none=True, exclude={"parsed_output"}) for b in blocks]


def tool_result(tool_use_id: str, text: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": text}],
    }


def raw_stream(fake: MessagesUpstream, body: dict[str, Any]) -> tuple[str, str]:
    req = urllib.request.Request(
        fake.url + "/v1/messages",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={
            "x-api-key": GOOD_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers["content-type"], resp.read().decode()


def test_streamed_two_turn_tool_conversation_with_thinking(fake: MessagesUpstream) -> None:
    sdk = client(fake)
    with sdk.messages.stream(
        model=AGENT, max_tokens=2048, thinking=THINK, tools=TOOLS, messages=ASK
    ) as stream:
        first = stream.get_final_message()
    assert MESSAGE_ID.fullmatch(first.id)
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    thinking, text, use = first.content
    assert thinking.thinking == THINKING
    assert thinking.signature == sign(THINKING)
    assert text.text == FIRST_TEXT
    assert use.name == TOOL and use.input == TOOL_INPUT
    assert TOOL_ID.fullmatch(use.id)
    assert first.stop_reason == "tool_use"
    assert first.usage.input_tokens == count_tokens({"messages": ASK, "tools": TOOLS})
    assert first.usage.output_tokens > 1
    assert fake.last.headers["anthropic-version"]
    assert fake.last.body["stream"] is True

    conversation = [
        *ASK,
        {"role": "assistant", "content": first.content},  # sent back as the SDK gave it
        tool_result(use.id, "hello world"),
    ]
    with sdk.messages.stream(
        model=AGENT, max_tokens=2048, thinking=THINK, tools=TOOLS, messages=conversation
    ) as stream:
        texts = list(stream.text_stream)
        second = stream.get_final_message()
    assert len(texts) >= 2  # the answer came in pieces
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == ANSWER_PREFIX + "hello world"
    assert second.stop_reason == "end_turn"

    # the same conversation without the thinking block is refused, as Anthropic does
    stripped = [*ASK, {"role": "assistant", "content": dump(first.content[1:])}, conversation[2]]
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        sdk.messages.create(
            model=AGENT, max_tokens=2048, thinking=THINK, tools=TOOLS, messages=stripped
        )
    # and so is a thinking block whose signature was tampered with
    tampered = dump(first.content)
    tampered[0]["signature"] = "forged"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        sdk.messages.create(
            model=AGENT,
            max_tokens=2048,
            thinking=THINK,
            tools=TOOLS,
            messages=[*ASK, {"role": "assistant", "content": tampered}, conversation[2]],
        )


def test_stream_grammar(fake: MessagesUpstream) -> None:
    body = {"model": AGENT, "max_tokens": 2048, "thinking": THINK, "tools": TOOLS}
    content_type, text = raw_stream(fake, {**body, "messages": ASK})
    assert content_type.startswith("text/event-stream")
    assert text.endswith("\n\n")
    kinds, deltas = [], []
    for event in text.removesuffix("\n\n").split("\n\n"):
        head, data = event.split("\n")
        assert head.startswith("event: ") and data.startswith("data: ")
        obj = json.loads(data.removeprefix("data: "))
        assert obj["type"] == head.removeprefix("event: ")
        kinds.append(obj["type"])
        if obj["type"] == "content_block_delta":
            deltas.append(obj["delta"]["type"])
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 3
    assert deltas.count("signature_delta") == 1
    assert deltas.index("signature_delta") == deltas.count("thinking_delta")
    assert 2 <= deltas.count("input_json_delta") <= 3
    assert deltas.count("text_delta") >= 2


def test_non_streamed(fake: MessagesUpstream) -> None:
    sdk = client(fake)
    first = sdk.messages.create(model=AGENT, max_tokens=256, tools=TOOLS, messages=ASK)
    assert first.type == "message" and first.role == "assistant" and first.model == AGENT
    assert [b.type for b in first.content] == ["text", "tool_use"]  # no thinking asked for
    assert first.stop_reason == "tool_use" and first.stop_sequence is None
    use = first.content[1]
    second = sdk.messages.create(
        model=AGENT,
        max_tokens=256,
        tools=TOOLS,
        messages=[
            *ASK,
            {"role": "assistant", "content": dump(first.content)},
            tool_result(use.id, "it is short"),
        ],
    )
    assert second.content[0].text == ANSWER_PREFIX + "it is short"
    assert second.stop_reason == "end_turn"

    cut = sdk.messages.create(model=MAX_TOKENS, max_tokens=5, messages=ASK)
    assert cut.stop_reason == "max_tokens"
    assert cut.content[0].text == TRUNCATED_TEXT
    assert cut.usage.output_tokens == 5


def test_count_tokens(fake: MessagesUpstream) -> None:
    counted = client(fake).messages.count_tokens(
        model=AGENT, system="Be brief.", tools=TOOLS, messages=ASK
    )
    assert counted.input_tokens == 2 + 10 + 5
    assert fake.last.path == "/v1/messages/count_tokens"
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs"):
        client(fake).messages.count_tokens(model=AGENT, messages=ASK, extra_body={"max_tokens": 5})


def test_anthropic_prefix(fake: MessagesUpstream) -> None:
    sdk = client(fake, prefix="/anthropic")
    message = sdk.messages.create(model=AGENT, max_tokens=64, messages=ASK)
    assert message.stop_reason == "tool_use"
    assert fake.last.path == "/anthropic/v1/messages"
    assert sdk.messages.count_tokens(model=AGENT, messages=ASK).input_tokens == 5
    assert fake.last.path == "/anthropic/v1/messages/count_tokens"


def test_bearer_key_is_accepted_too(fake: MessagesUpstream) -> None:
    sdk = anthropic.Anthropic(base_url=fake.url, auth_token=GOOD_KEY, max_retries=0)
    assert sdk.messages.create(model=AGENT, max_tokens=64, messages=ASK).content
    assert fake.last.headers["Authorization"] == f"Bearer {GOOD_KEY}"
    assert "X-Api-Key" not in fake.last.headers


def test_wrong_key(fake: MessagesUpstream) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client(fake, key="sk-ant-wrong").messages.create(model=AGENT, max_tokens=64, messages=ASK)
    assert caught.value.status_code == 401
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_missing_version_header(fake: MessagesUpstream) -> None:
    sdk = client(fake)
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        sdk.messages.create(
            model=AGENT,
            max_tokens=64,
            messages=ASK,
            extra_headers={"anthropic-version": anthropic.Omit()},
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"reasoning_effort": "high"}, "reasoning_effort: Extra inputs are not permitted"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"messages": []}, "at least one message is required"),
        ({"messages": [{"role": "system", "content": "x"}]}, "Input should be 'user'"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "first message must use"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}]},
            "Input tag 'input_text'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "n": 1}]}]},
            r"messages.0.content.0.text.n: Extra inputs",
        ),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "greater than or equal to 1024"),
    ],
)
def test_refused_bodies(fake: MessagesUpstream, extra: dict[str, Any], message: str) -> None:
    body: dict[str, Any] = {"model": AGENT, "max_tokens": 64, "messages": ASK, **extra}
    with pytest.raises(anthropic.BadRequestError, match=message) as caught:
        client(fake).post("/v1/messages", body=body, cast_to=object)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_unknown_top_level_field(fake: MessagesUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(fake).messages.create(
            model=AGENT, max_tokens=64, messages=ASK, extra_body={"stream_options": {}}
        )
    assert "stream_options" in caught.value.message
    assert fake.last.body["stream_options"] == {}


def test_mismatched_tool_use_id(fake: MessagesUpstream) -> None:
    sdk = client(fake)
    first = sdk.messages.create(model=AGENT, max_tokens=64, tools=TOOLS, messages=ASK)
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`") as caught:
        sdk.messages.create(
            model=AGENT,
            max_tokens=64,
            tools=TOOLS,
            messages=[
                *ASK,
                {"role": "assistant", "content": dump(first.content)},
                tool_result("toolu_01NotTheOneYouWereGiven", "text"),
            ],
        )
    assert "toolu_01NotTheOneYouWereGiven" in caught.value.message
    # a tool use left unanswered is refused too
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result` blocks"):
        sdk.messages.create(
            model=AGENT,
            max_tokens=64,
            tools=TOOLS,
            messages=[
                *ASK,
                {"role": "assistant", "content": dump(first.content)},
                {"role": "user", "content": "never mind"},
            ],
        )


def test_overloaded(fake: MessagesUpstream) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client(fake).messages.create(model=OVERLOADED, max_tokens=64, messages=ASK)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_rate_limited(fake: MessagesUpstream) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(fake).messages.create(model=RATE_LIMITED, max_tokens=64, messages=ASK)
    assert caught.value.response.headers["retry-after"] == RETRY_AFTER


def test_die_midstream(fake: MessagesUpstream) -> None:
    with (
        pytest.raises(anthropic.APIConnectionError, match="incomplete chunked read"),
        client(fake).messages.stream(model=DIE_MIDSTREAM, max_tokens=64, messages=ASK) as stream,
    ):
        stream.get_final_message()


def test_error_midstream(fake: MessagesUpstream) -> None:
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        client(fake).messages.stream(model=ERROR_MIDSTREAM, max_tokens=64, messages=ASK) as stream,
    ):
        stream.get_final_message()
