"""The Responses API ⇄ Chat Completions, as plain values: what Codex sends
(../shared/CLIENTS.md), and what providers answer, each stream held to the Responses event
grammar (tests/responses_grammar.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.responses_grammar import parse_sse, validate
from trayproxy.protocols.responses_answer import from_chat
from trayproxy.protocols.responses_request import StatefulRequestError, to_chat
from trayproxy.protocols.responses_stream import ResponsesStream

EXEC = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
        "required": ["cmd"],
    },
    "strict": False,
}
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: patch"},
}


def codex_body(**changes: Any) -> dict[str, Any]:
    """A request shaped like Codex's."""
    body: dict[str, Any] = {
        "model": "nvidia/kimi-k2-thinking",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What is in notes.txt?"}],
            },
        ],
        "tools": [
            EXEC,
            APPLY_PATCH,
            {"type": "namespace", "name": "mcp", "tools": [{**EXEC, "name": "mcp_read"}]},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"effort": "high", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "abc",
        "client_metadata": {"x": "y"},
        "text": {"verbosity": "low"},
    }
    body.update(changes)
    return body


def test_a_codex_request_becomes_a_chat_request_and_says_what_it_dropped() -> None:
    out = to_chat(codex_body(), reasoning="reasoning_effort")
    body = out.body
    assert body["messages"] == [
        {"role": "system", "content": "You are Codex."},
        {"role": "user", "content": "What is in notes.txt?"},
    ]
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["exec_command", "apply_patch", "mcp_read"]  # the namespace flattened
    patch = body["tools"][1]["function"]
    assert patch["parameters"]["required"] == ["input"]
    assert "start: patch" in patch["description"]
    assert out.custom_tools == frozenset({"apply_patch"})
    assert body["reasoning_effort"] == "high"
    assert body["parallel_tool_calls"] is True and body["tool_choice"] == "auto"
    assert body["stream_options"] == {"include_usage": True}
    dropped = out.notes[-1]
    for name in (
        "client_metadata",
        "hosted tool web_search",
        "include",
        "prompt_cache_key",
        "store",
        "text.verbosity",
    ):
        assert name in dropped


def test_a_conversation_with_tools_reasoning_and_a_patch_goes_back_whole() -> None:
    body = codex_body(
        input=[
            {"type": "message", "role": "user", "content": "Fix it"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Look first."}],
                "encrypted_content": "opaque",
            },
            {
                "type": "function_call",
                "call_id": "functions.exec_command:0",
                "name": "exec_command",
                "arguments": '{"cmd": "cat notes.txt"}',
            },
            {"type": "function_call_output", "call_id": "functions.exec_command:0", "output": "hi"},
            {
                "type": "custom_tool_call",
                "call_id": "call_2",
                "name": "apply_patch",
                "input": "*** Begin Patch",
            },
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Patched."}],
            },
            {"type": "message", "role": "user", "content": "Thanks"},
        ]
    )
    messages = to_chat(body).body["messages"]
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    first_call = messages[1]
    assert first_call["reasoning_content"] == "Look first."
    assert first_call["tool_calls"][0]["id"] == "functions.exec_command:0"
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": "functions.exec_command:0",
        "content": "hi",
    }
    patch = messages[3]["tool_calls"][0]["function"]
    assert json.loads(patch["arguments"]) == {"input": "*** Begin Patch"}
    assert messages[5]["content"] == "Patched."


def test_structured_output_and_the_stateful_form() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    fmt = {"type": "json_schema", "name": "count", "schema": schema, "strict": True}
    body = to_chat({"model": "m", "input": "count", "text": {"format": fmt}}).body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    with pytest.raises(StatefulRequestError, match="keeps no conversations"):
        to_chat({"model": "m", "input": "more", "previous_response_id": "resp_1"})


def sse(*objs: Any) -> bytes:
    return b"".join(
        b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n" for o in objs
    )


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields}]}


def finish(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


STREAM = sse(
    delta(role="assistant", content=""),
    delta(reasoning_content="Let me "),
    delta(reasoning_content="look."),
    delta(content="Running "),
    delta(content="it."),
    delta(
        tool_calls=[
            {
                "index": 0,
                "id": "functions.exec_command:0",
                "function": {"name": "exec_command", "arguments": ""},
            }
        ]
    ),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '{"cmd": '}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '"ls"}'}}]),
    delta(tool_calls=[{"index": 1, "id": "call_9", "function": {"name": "apply_patch"}}]),
    delta(tool_calls=[{"index": 1, "function": {"arguments": '{"input": "*** Begin Patch"}'}}]),
    finish("tool_calls"),
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 12},
        },
    },
    b"[DONE]",
)


@pytest.mark.parametrize("split", [0, 1, 9])
def test_a_thinking_tool_calling_stream_keeps_the_responses_grammar(split: int) -> None:
    t = ResponsesStream(model="m", input_tokens=7, custom_tools=frozenset({"apply_patch"}))
    out = t.start()
    pieces = (
        [STREAM] if not split else [STREAM[i : i + split] for i in range(0, len(STREAM), split)]
    )
    for piece in pieces:
        out += t.feed(piece)
    out += t.finish()
    response = validate(parse_sse(out))
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["reasoning", "message", "function_call", "custom_tool_call"]
    reasoning, message, call, patch = response["output"]
    assert reasoning["summary"][0]["text"] == "Let me look."
    assert message["content"][0]["text"] == "Running it."
    assert call["call_id"] == "functions.exec_command:0"
    assert json.loads(call["arguments"]) == {"cmd": "ls"}
    assert patch["input"] == "*** Begin Patch" and patch["call_id"] == "call_9"
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 40
    assert response["usage"]["output_tokens_details"]["reasoning_tokens"] == 12


def test_length_ends_incomplete_and_a_cut_stream_fails() -> None:
    t = ResponsesStream(model="m", input_tokens=7)
    out = t.start() + t.feed(sse(delta(content="so"), finish("length"), b"[DONE]")) + t.finish()
    response = validate(parse_sse(out))
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    t = ResponsesStream(model="m", input_tokens=7)
    out = t.start() + t.feed(sse(delta(content="half")))
    assert t.finish() == b""
    out += t.error(429, "Rate limit reached; try again in 7 s", "rate_limit_exceeded")
    response = validate(parse_sse(out))
    assert response["status"] == "failed"
    assert response["error"]["code"] == "rate_limit_exceeded"


def test_a_whole_answer_becomes_a_response() -> None:
    answer = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "reasoning_content": "hmm",
                    "content": "ok",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "function": {"name": "apply_patch", "arguments": '{"input": "P"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }
    response = from_chat(answer, model="m", custom_tools=frozenset({"apply_patch"}))
    assert [i["type"] for i in response["output"]] == ["reasoning", "message", "custom_tool_call"]
    assert response["output"][2]["input"] == "P"
    assert response["status"] == "completed" and response["usage"]["total_tokens"] == 15


def test_tool_output_images_follow_as_the_user_s_and_lone_flags_are_not_sent() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AA"}
    body = {
        "model": "m",
        "input": [
            {"type": "function_call", "call_id": "c", "name": "shot", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": [{"type": "input_text", "text": "a screenshot"}, image],
            },
        ],
        "tools": [{"type": "web_search"}],
        "parallel_tool_calls": True,
    }
    out = to_chat(body).body
    assert [m["role"] for m in out["messages"]] == ["assistant", "tool", "user"]
    assert out["messages"][1]["content"] == "a screenshot"
    assert out["messages"][2]["content"][0]["type"] == "image_url"
    assert "parallel_tool_calls" not in out and "tools" not in out  # refused without tools


def test_a_stream_cut_after_its_finish_has_one_terminal_event() -> None:
    t = ResponsesStream(model="m", input_tokens=7)
    out = t.start() + t.feed(
        b'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}'
    )
    out += t.finish() + t.error(502, "cut")
    assert validate(parse_sse(out))["status"] == "completed"
