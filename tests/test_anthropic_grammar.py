"""Tests of the Anthropic streaming checker itself (tests/anthropic_grammar.py).

The streams here are written by hand in the shapes of the examples on Anthropic's "Streaming
Messages" docs page; each failing case breaks exactly one rule and matches its own message.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.anthropic_grammar import Event, parse_sse, validate

# --- builders --------------------------------------------------------------------------------


def ev(name: str, **fields: Any) -> Event:
    return (name, {"type": name, **fields})


def message_start(input_tokens: int = 25, **overrides: Any) -> Event:
    message: dict[str, Any] = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    message.update(overrides)
    return ev("message_start", message=message)


def block_start(index: int, **block: Any) -> Event:
    return ev("content_block_start", index=index, content_block=block)


def delta(index: int, kind: str, **fields: Any) -> Event:
    return ev("content_block_delta", index=index, delta={"type": kind, **fields})


def block_stop(index: int) -> Event:
    return ev("content_block_stop", index=index)


def message_delta(
    stop_reason: str = "end_turn", output_tokens: int = 15, stop_sequence: str | None = None
) -> Event:
    return ev(
        "message_delta",
        delta={"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        usage={"output_tokens": output_tokens},
    )


PING = ev("ping")
MESSAGE_STOP = ev("message_stop")
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"


def text_block(index: int, *pieces: str) -> list[Event]:
    return [
        block_start(index, type="text", text=""),
        *(delta(index, "text_delta", text=piece) for piece in pieces),
        block_stop(index),
    ]


def thinking_block(index: int, *pieces: str, signature: str | None = SIGNATURE) -> list[Event]:
    events = [
        block_start(index, type="thinking", thinking="", signature=""),
        *(delta(index, "thinking_delta", thinking=piece) for piece in pieces),
    ]
    if signature is not None:
        events.append(delta(index, "signature_delta", signature=signature))
    return [*events, block_stop(index)]


def tool_block(index: int, *pieces: str, tool_id: str = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"):
    return [
        block_start(index, type="tool_use", id=tool_id, name="get_weather", input={}),
        *(delta(index, "input_json_delta", partial_json=piece) for piece in pieces),
        block_stop(index),
    ]


def text_answer(*pieces: str) -> list[Event]:
    return [message_start(), *text_block(0, *pieces), message_delta(), MESSAGE_STOP]


def tool_answer(*pieces: str, tool_id: str = "toolu_01T1x1fJ34qAmk2tNTrN7Up6") -> list[Event]:
    return [
        message_start(),
        *tool_block(0, *pieces, tool_id=tool_id),
        message_delta("tool_use"),
        MESSAGE_STOP,
    ]


def to_sse(events: list[Event]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def fails(match: str) -> Any:
    return pytest.raises(AssertionError, match=match)


# --- valid streams ---------------------------------------------------------------------------


def test_a_text_answer_parses_and_assembles() -> None:
    events = text_answer("Hello", "!")
    events.insert(2, PING)  # pings may come anywhere, as in the docs' example
    raw = b": a comment line\n\n" + to_sse(events).replace(b"\n", b"\r\n")
    parsed = parse_sse(raw)
    assert parsed == events

    message = validate(parsed)
    assert message["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert message["model"] == "claude-sonnet-4-5"
    assert message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    assert message["usage"] == {"input_tokens": 25, "output_tokens": 15}
    assert "error" not in message


def test_a_thinking_text_and_tool_use_answer_assembles() -> None:
    events = [
        PING,
        message_start(),
        *thinking_block(0, "Let me check ", "the weather."),
        *text_block(1, "Checking", " the weather."),
        PING,
        *tool_block(
            2, "", '{"location":', ' "San', " Francisc", 'o, CA"', ", ", '"unit": "fah', 'renheit"}'
        ),
        message_delta("tool_use", output_tokens=89),
        MESSAGE_STOP,
    ]
    message = validate(parse_sse(to_sse(events)))
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me check the weather.", "signature": SIGNATURE},
        {"type": "text", "text": "Checking the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "fahrenheit"},
        },
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["output_tokens"] == 89


def test_redacted_thinking_and_an_empty_tool_input() -> None:
    events = [
        message_start(),
        block_start(0, type="redacted_thinking", data="EmwKAhgBEgy3va3pzix"),
        block_stop(0),
        *tool_block(1),  # no input_json_delta at all: the input is {}
        message_delta("tool_use"),
        MESSAGE_STOP,
    ]
    content = validate(events)["content"]
    assert content[0] == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    assert content[1]["input"] == {}


def test_a_stop_sequence_and_cumulative_usage() -> None:
    events = text_answer("one, two")
    events[-2] = ev(
        "message_delta",
        delta={"stop_reason": "stop_sequence", "stop_sequence": "three"},
        usage={"output_tokens": 4, "input_tokens": 30, "cache_read_input_tokens": None},
    )
    message = validate(events)
    assert message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "three"
    assert message["usage"] == {"input_tokens": 30, "output_tokens": 4}


def test_input_tokens_may_be_zero_when_the_request_had_no_input() -> None:
    events = [message_start(input_tokens=0), *text_block(0, "hi"), message_delta(), MESSAGE_STOP]
    assert validate(events, request_had_input=False)["usage"]["input_tokens"] == 0


# --- framing (parse_sse) ---------------------------------------------------------------------


def test_data_that_is_not_json_fails() -> None:
    with fails(r"line 2: event 'ping': data is not JSON"):
        parse_sse(b"event: ping\ndata: {type: ping}\n\n")


def test_an_event_name_differing_from_the_data_type_fails() -> None:
    with fails(r"event name 'ping' differs from its data's type 'message_stop'"):
        parse_sse(b'event: ping\ndata: {"type": "message_stop"}\n\n')


def test_an_event_without_data_fails() -> None:
    with fails(r"line 4: event 'ping' has no data: line"):
        parse_sse(b'event: ping\ndata: {"type": "ping"}\n\nevent: ping\n\n')


def test_an_unterminated_last_event_fails() -> None:
    with fails(r"line 4: unterminated event"):
        parse_sse(b'event: ping\ndata: {"type": "ping"}\n\nevent: ping\ndata: {"type": "ping"}\n')
    assert parse_sse(b'event: ping\ndata: {"type": "ping"}\n\n \n') == [PING]


# --- grammar (validate): one test per rule ---------------------------------------------------


def test_failures_name_the_event_index() -> None:
    events = [message_start(), *text_block(0, "a"), *text_block(2, "b")]
    with fails(r"^event #4 \(content_block_start\): content_block_start index 2, expected 1"):
        validate(events)


def test_two_open_blocks_fail() -> None:
    events = [message_start(), block_start(0, type="text", text=""), *text_block(1, "b")]
    with fails(r"block 1 starts while block 0 is still open"):
        validate(events)


def test_a_thinking_block_stopped_without_a_signature_fails() -> None:
    events = [message_start(), *thinking_block(0, "hmm", signature=None)]
    with fails(r"thinking block 0 stopped without a signature_delta"):
        validate(events)


def test_thinking_after_the_signature_fails() -> None:
    events = [
        message_start(),
        block_start(0, type="thinking", thinking=""),
        delta(0, "signature_delta", signature=SIGNATURE),
        delta(0, "thinking_delta", thinking="more"),
    ]
    with fails(r"thinking_delta after block 0's signature_delta"):
        validate(events)


def test_a_delta_for_the_wrong_block_fails() -> None:
    events = [
        message_start(),
        *text_block(0, "a"),
        block_start(1, type="text", text=""),
        delta(0, "text_delta", text="late"),
    ]
    with fails(r"delta targets block 0, but block 1 is open"):
        validate(events)


def test_a_delta_type_the_block_does_not_take_fails() -> None:
    events = [
        message_start(),
        block_start(0, type="text", text=""),
        delta(0, "input_json_delta", partial_json="{}"),
    ]
    with fails(r"delta type 'input_json_delta' is not allowed in a text block"):
        validate(events)


def test_a_block_left_open_at_message_delta_fails() -> None:
    events = [message_start(), block_start(0, type="text", text=""), message_delta()]
    with fails(r"message_delta while block 0 is still open"):
        validate(events)


def test_a_duplicate_message_start_fails() -> None:
    with fails(r"event #1 \(message_start\): duplicate message_start \(first at #0\)"):
        validate([message_start(), message_start(), *text_answer("x")[1:]])


def test_message_start_must_come_first() -> None:
    with fails(r"event #0 \(content_block_start\): comes before message_start"):
        validate([block_start(0, type="text", text=""), message_start()])


def test_an_event_after_message_stop_fails() -> None:
    with fails(r"event #6 \(ping\): nothing may follow message_stop \(event #5\)"):
        validate([*text_answer("x"), PING])


def test_bad_tool_id_characters_fail() -> None:
    with fails(re.escape("tool_use id 'toolu 01.x' does not match ^[a-zA-Z0-9_-]+$")):
        validate(tool_answer('{"a": 1}', tool_id="toolu 01.x"))
    with fails(r"tool_use id 'toolu_01\\n' does not match"):  # no trailing newline either
        validate(tool_answer('{"a": 1}', tool_id="toolu_01\n"))


def test_unparseable_tool_input_fails() -> None:
    with fails(r"tool_use block 0: the concatenated partial_json is not JSON"):
        validate(tool_answer('{"location":', ' "San Fra'))
    with fails(r"tool_use block 0: input is a JSON list, not an object"):
        validate(tool_answer("[1, ", "2]"))


def test_zero_input_tokens_fails_when_the_request_had_input() -> None:
    events = [message_start(input_tokens=0), *text_answer("x")[1:]]
    with fails(r"message.usage.input_tokens is 0, but the request had input"):
        validate(events)


def test_an_unknown_event_name_fails() -> None:
    with fails(r"event #1 \(content_block_pause\): unknown event name 'content_block_pause'"):
        validate([message_start(), ev("content_block_pause", index=0)])


def test_stop_reason_tool_use_needs_a_tool_use_block() -> None:
    events = [message_start(), *text_block(0, "x"), message_delta("tool_use"), MESSAGE_STOP]
    with fails(r"stop_reason 'tool_use' but the message has no tool_use block"):
        validate(events)


def test_stop_reason_stop_sequence_needs_the_sequence() -> None:
    events = [message_start(), *text_block(0, "x"), message_delta("stop_sequence"), MESSAGE_STOP]
    with fails(r"stop_reason 'stop_sequence' needs a string delta.stop_sequence, got None"):
        validate(events)


def test_an_undocumented_stop_reason_fails() -> None:
    events = [message_start(), *text_block(0, "x"), message_delta("done"), MESSAGE_STOP]
    with fails(r"stop_reason 'done' is not one of"):
        validate(events)


def test_a_second_message_delta_fails() -> None:
    events = text_answer("x")
    events.insert(-1, message_delta())
    with fails(r"duplicate message_delta \(first at #4\)"):
        validate(events)


def test_the_stream_must_end_with_message_stop() -> None:
    with fails(r"the stream ended after event #4 \(message_delta\) without message_stop"):
        validate(text_answer("x")[:-1])
    with fails(r"message_stop without a message_delta before it"):
        validate([message_start(), *text_block(0, "x"), MESSAGE_STOP])


# --- errors ----------------------------------------------------------------------------------

OVERLOADED = ev("error", error={"type": "overloaded_error", "message": "Overloaded"})


def test_an_error_ends_a_stream_with_a_block_still_open() -> None:
    events = [
        message_start(),
        *text_block(0, "Hello"),
        block_start(1, type="text", text=""),
        delta(1, "text_delta", text="wor"),
        OVERLOADED,
    ]
    message = validate(parse_sse(to_sse(events)))
    assert message["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert message["content"] == [
        {"type": "text", "text": "Hello"},
        {"type": "text", "text": "wor"},
    ]
    assert message["stop_reason"] is None


def test_an_error_may_come_before_message_start_but_nothing_may_follow_it() -> None:
    message = validate([PING, OVERLOADED])
    assert message["error"]["type"] == "overloaded_error"
    assert message["content"] == []
    with fails(r"event #2 \(message_start\): nothing may follow error \(event #1\)"):
        validate([PING, OVERLOADED, message_start()])
