"""Anthropic Messages ⇄ Chat Completions, as plain values: the request Claude Code sends, the
answers and streams providers send back, each stream held to Anthropic's event grammar
(tests/anthropic_grammar.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.anthropic_grammar import parse_sse, validate
from trayproxy.protocols import tool_ids
from trayproxy.protocols.messages_answer import from_chat
from trayproxy.protocols.messages_request import to_chat
from trayproxy.protocols.messages_stream import MessagesStream

READ_FILE = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    },
}


def claude_code_body(**changes: Any) -> dict[str, Any]:
    """A request shaped like Claude Code's (../shared/CLIENTS.md)."""
    body: dict[str, Any] = {
        "model": "nvidia/kimi-k2-thinking",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "What does the README say?"},
                ],
            },
            {"role": "system", "content": "Environment: Linux"},
        ],
        "tools": [
            READ_FILE,
            {**READ_FILE, "name": "web_fetch", "defer_loading": True},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ],
        "metadata": {"user_id": "user_abc"},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
    }
    body.update(changes)
    return body


def test_a_claude_code_request_becomes_a_chat_request_and_says_what_it_dropped() -> None:
    out = to_chat(claude_code_body(), reasoning="reasoning_effort")
    body = out.body
    assert body["messages"] == [
        {"role": "system", "content": "You are Claude Code.\n\nBe brief."},
        {
            "role": "user",
            "content": "<system-reminder>ctx</system-reminder>\n\nWhat does the README say?"
            "\n\nEnvironment: Linux",
        },
    ]
    assert [t["function"]["name"] for t in body["tools"]] == ["read_file", "web_fetch"]
    assert "$schema" not in body["tools"][0]["function"]["parameters"]
    assert body["stream_options"] == {"include_usage": True}
    assert body["reasoning_effort"] == "high"  # output_config.effort wins over the budget
    assert set(body) == {
        "model",
        "messages",
        "max_tokens",
        "stream",
        "stream_options",
        "tools",
        "reasoning_effort",
    }
    assert out.notes[0] == "Anthropic Messages → Chat Completions"
    assert "system messages in the conversation sent as user text (1)" in out.notes
    dropped = out.notes[-1]
    for name in (
        "cache_control",
        "context_management",
        "metadata",
        "output_config",
        "server tool web_search_20250305",
        "tool flag defer_loading",
    ):
        assert name in dropped


def test_a_tool_round_trip_keeps_ids_reasoning_and_error_results() -> None:
    kimi_id = tool_ids.for_client("functions.read_file:0")
    assert kimi_id.startswith("tpid_") and tool_ids.for_provider(kimi_id) == "functions.read_file:0"
    # Kimi numbers its calls per turn: the client still gets each id once
    assert tool_ids.for_client("functions.read_file:0") != kimi_id
    assert tool_ids.for_client("call_abc-1") == "call_abc-1"  # ids that fit pass as they are
    assert tool_ids.for_provider("toolu_01abc") == "toolu_01abc"
    messages = [
        {"role": "user", "content": "Read it"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should read it.", "signature": "sig"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": kimi_id, "name": "read_file", "input": {"path": "a"}},
                {"type": "tool_use", "id": "toolu_2", "name": "read_file", "input": {"path": "b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": kimi_id, "content": "alpha"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "no such file"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                    ],
                },
                {"type": "text", "text": "Go on."},
            ],
        },
    ]
    body = to_chat({"model": "m", "max_tokens": 10, "messages": messages}).body
    user, assistant, first, second, after = body["messages"]
    assert user == {"role": "user", "content": "Read it"}
    assert assistant["reasoning_content"] == "I should read it."
    assert assistant["content"] == "Reading."
    assert [c["id"] for c in assistant["tool_calls"]] == ["functions.read_file:0", "toolu_2"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"path": "a"}
    assert first == {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "alpha"}
    assert second == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such file"}
    assert after["role"] == "user"
    assert after["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
        {"type": "text", "text": "Go on."},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "read_file"},
            {"type": "function", "function": {"name": "read_file"}},
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = to_chat({"model": "m", "messages": [], "tools": [READ_FILE], "tool_choice": choice})
    assert body.body["tool_choice"] == expected


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("openrouter", {"reasoning": {"max_tokens": 3000}}),
        ("enable_thinking", {"enable_thinking": True, "thinking_budget": 3000}),
        ("reasoning_effort", {"reasoning_effort": "low"}),
        ("none", {}),
    ],
)
def test_thinking_reaches_the_reasoning_parameter_the_profile_names(style, expected) -> None:
    thinking = {"type": "enabled", "budget_tokens": 3000}
    body = to_chat({"model": "m", "messages": [], "thinking": thinking}, reasoning=style).body
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == expected


def test_a_whole_answer_becomes_a_message() -> None:
    answer = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "reasoning_content": "thought",
                    "content": "text",
                    "tool_calls": [
                        {
                            "id": "functions.read_file:0",
                            "type": "function",
                            "function": {"name": "read_file", "arguments": '{"path": "x"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 60},
        },
    }
    message = from_chat(answer, model="nvidia/kimi", stop_sequences=[])
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0]["signature"]
    tool = message["content"][2]
    assert (
        tool["input"] == {"path": "x"}
        and tool_ids.for_provider(tool["id"]) == "functions.read_file:0"
    )
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 40,
        "output_tokens": 20,
        "cache_read_input_tokens": 60,
    }
    assert message["model"] == "nvidia/kimi"


def sse(*objs: Any) -> bytes:
    return b"".join(
        b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n" for o in objs
    )


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields}]}


def finish(reason: str, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason, **extra}]}


def translate(stream: bytes, *, split: int = 0, stops: list[str] | None = None) -> bytes:
    """The translation of ``stream`` fed whole, or in pieces of ``split`` bytes."""
    t = MessagesStream(model="m", input_tokens=42, stop_sequences=stops or [])
    out = t.start()
    pieces = (
        [stream] if not split else [stream[i : i + split] for i in range(0, len(stream), split)]
    )
    for piece in pieces:
        out += t.feed(piece)
    return out + t.finish()


KIMI_STREAM = sse(
    delta(role="assistant", content=""),
    delta(reasoning_content="Let me "),
    delta(reasoning_content="read it."),
    delta(content="Reading "),
    delta(content="now."),
    delta(
        tool_calls=[
            {
                "index": 0,
                "id": "functions.read_file:0",
                "type": "function",
                "function": {"name": "read_file", "arguments": ""},
            }
        ]
    ),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '{"path": '}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '"a"}'}}]),
    delta(
        tool_calls=[{"index": 1, "id": "functions.read_file:1", "function": {"name": "read_file"}}]
    ),
    delta(tool_calls=[{"index": 1, "function": {"arguments": '{"path": "b"}'}}]),
    finish("tool_calls"),
    {"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 33}},
    b"[DONE]",
)


@pytest.mark.parametrize("split", [0, 1, 7])
def test_a_thinking_tool_calling_stream_keeps_anthropic_s_grammar(split: int) -> None:
    message = validate(parse_sse(translate(KIMI_STREAM, split=split)))
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, first, second = message["content"]
    assert thinking["thinking"] == "Let me read it." and thinking["signature"]
    assert text["text"] == "Reading now."
    assert first["input"] == {"path": "a"} and second["input"] == {"path": "b"}
    assert tool_ids.for_provider(second["id"]) == "functions.read_file:1"
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 120 and message["usage"]["output_tokens"] == 33


def test_reasoning_after_text_opens_a_new_block() -> None:
    stream = sse(
        delta(reasoning="a"), delta(content="b"), delta(reasoning="c"), finish("stop"), b"[DONE]"
    )
    message = validate(parse_sse(translate(stream)))
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "thinking"]
    assert message["stop_reason"] == "end_turn"


def test_without_usage_the_counts_are_estimated_never_zero() -> None:
    stream = sse(delta(content="Hello there, how are you today?"), finish("length"), b"[DONE]")
    message = validate(parse_sse(translate(stream)))
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["input_tokens"] == 42
    assert message["usage"]["output_tokens"] > 0


def test_a_stop_sequence_the_server_names_is_reported() -> None:
    stream = sse(delta(content="1, 2, 3"), finish("stop", stop_reason="END"), b"[DONE]")
    message = validate(parse_sse(translate(stream, stops=["END"])))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_a_truncated_stream_gets_no_message_stop_so_the_relay_can_end_it_with_an_error() -> None:
    t = MessagesStream(model="m", input_tokens=5, stop_sequences=[])
    out = t.start() + t.feed(sse(delta(content="half an answ")))
    assert t.finish() == b""
    out += t.error(502, "Provider 'x' ended the stream without finishing it")
    message = validate(parse_sse(out))
    assert message["error"]["type"] == "api_error"
    assert message["content"][0]["text"] == "half an answ"


def test_a_provider_error_mid_stream_becomes_an_error_event() -> None:
    stream = sse(delta(content="so far"), {"error": {"message": "overloaded, try later"}})
    t = MessagesStream(model="m", input_tokens=5, stop_sequences=[])
    out = t.start() + t.feed(stream) + t.feed(sse(delta(content="ignored")))
    assert t.finish() == b""
    message = validate(parse_sse(out))
    assert message["error"]["message"] == "overloaded, try later"
    assert message["content"][0]["text"] == "so far"


def test_odd_provider_streams_still_end_as_anthropic_says() -> None:
    # the last event without its blank line, then the end of the body
    t = MessagesStream(model="m", input_tokens=5, stop_sequences=[])
    out = t.start() + t.feed(
        b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n'
    )
    message = validate(parse_sse(out + t.finish()))
    assert message["content"][0]["text"] == "hi" and message["stop_reason"] == "end_turn"
    assert t.error(502, "late") == b""  # one end only
    # Mistral's in-stream error shape, and tool arguments sent as an object
    t = MessagesStream(model="m", input_tokens=5, stop_sequences=[])
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}
    out = t.start() + t.feed(sse(delta(tool_calls=[call])))
    out += t.feed(sse({"object": "error", "message": "boom"}))
    message = validate(parse_sse(out + t.finish()))
    assert message["error"]["message"] == "boom"
    assert message["content"][0]["input"] == {"a": 1}


def test_a_profile_that_asks_no_usage_gets_no_stream_options() -> None:
    body = {"model": "m", "messages": [], "stream": True}
    assert "stream_options" not in to_chat(body, include_usage=False).body
