"""Tests of the Responses API streaming checker itself (tests/responses_grammar.py).

The streams here are written by hand in the shapes of OpenAI's Responses streaming events (and
the models the official SDK generates for them); each failing case breaks exactly one rule and
matches its own message.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.responses_grammar import Event, parse_sse, validate

RESPONSE_ID = "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
MSG_ID = "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b"
RS_ID = "rs_6876cf02e0bc8192b74af0fb64b715ff06fa2fcced15a5ac"
FC_IDS = ("fc_12345xyz", "fc_67890abc")
CALL_IDS = ("call_12345xyz", "call_67890abc")
CTC_ID = "ctc_6890e975e86c819c9338825b3e1994810694874912ae0ea6"

Built = tuple[list[Event], dict[str, Any]]  # an item's events and its done item

# --- builders --------------------------------------------------------------------------------


def ev(kind: str, **fields: Any) -> Event:
    return {"type": kind, **fields}


def numbered(events: list[Event], start: int = 0) -> list[Event]:
    return [{**event, "sequence_number": start + i} for i, event in enumerate(events)]


def response(status: str, output: list[dict[str, Any]] | None = None, **extra: Any) -> Event:
    body: dict[str, Any] = {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": "gpt-4.1-2025-04-14",
        "output": output if output is not None else [],
        "usage": None,
    }
    body.update(extra)
    return body


def usage(input_tokens: int = 36, output_tokens: int = 87, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    body.update(overrides)
    return body


def sub(kind: str, index: int, item_id: str, **fields: Any) -> Event:
    return ev(kind, item_id=item_id, output_index=index, **fields)


def message(index: int, *pieces: str, item_id: str = MSG_ID) -> Built:
    text = "".join(pieces)
    part = {"type": "output_text", "text": text, "annotations": []}
    done = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    events = [
        ev(
            "response.output_item.added",
            output_index=index,
            item={**done, "status": "in_progress", "content": []},
        ),
        sub(
            "response.content_part.added",
            index,
            item_id,
            content_index=0,
            part={**part, "text": ""},
        ),
        *(
            sub("response.output_text.delta", index, item_id, content_index=0, delta=p)
            for p in pieces
        ),
        sub("response.output_text.done", index, item_id, content_index=0, text=text),
        sub("response.content_part.done", index, item_id, content_index=0, part=part),
        ev("response.output_item.done", output_index=index, item=done),
    ]
    return events, done


def reasoning(index: int, *pieces: str, item_id: str = RS_ID) -> Built:
    text = "".join(pieces)
    done = {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}
    events = [
        ev("response.output_item.added", output_index=index, item={**done, "summary": []}),
        sub(
            "response.reasoning_summary_part.added",
            index,
            item_id,
            summary_index=0,
            part={"type": "summary_text", "text": ""},
        ),
        *(
            sub("response.reasoning_summary_text.delta", index, item_id, summary_index=0, delta=p)
            for p in pieces
        ),
        sub("response.reasoning_summary_text.done", index, item_id, summary_index=0, text=text),
        sub(
            "response.reasoning_summary_part.done",
            index,
            item_id,
            summary_index=0,
            part={"type": "summary_text", "text": text},
        ),
        ev("response.output_item.done", output_index=index, item=done),
    ]
    return events, done


def function_call(
    index: int,
    *pieces: str,
    item_id: str = FC_IDS[0],
    call_id: str = CALL_IDS[0],
    name: str = "get_weather",
    arguments: str | None = None,
) -> Built:
    joined = "".join(pieces)
    done = {
        "id": item_id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": joined,
    }
    events = [
        ev(
            "response.output_item.added",
            output_index=index,
            item={**done, "status": "in_progress", "arguments": ""},
        ),
        *(sub("response.function_call_arguments.delta", index, item_id, delta=p) for p in pieces),
        sub(
            "response.function_call_arguments.done",
            index,
            item_id,
            arguments=joined if arguments is None else arguments,
        ),
        ev("response.output_item.done", output_index=index, item=done),
    ]
    return events, done


def custom_tool_call(index: int, *pieces: str, item_id: str = CTC_ID) -> Built:
    joined = "".join(pieces)
    done = {
        "id": item_id,
        "type": "custom_tool_call",
        "status": "completed",
        "call_id": "call_aGiFQkRWSWAIsMQ19fKqxUgb",
        "name": "code_exec",
        "input": joined,
    }
    events = [
        ev(
            "response.output_item.added",
            output_index=index,
            item={**done, "status": "in_progress", "input": ""},
        ),
        *(sub("response.custom_tool_call_input.delta", index, item_id, delta=p) for p in pieces),
        sub("response.custom_tool_call_input.done", index, item_id, input=joined),
        ev("response.output_item.done", output_index=index, item=done),
    ]
    return events, done


def head() -> list[Event]:
    return [
        ev("response.created", response=response("in_progress")),
        ev("response.in_progress", response=response("in_progress")),
    ]


def completed(output: list[dict[str, Any]], **extra: Any) -> Event:
    extra.setdefault("usage", usage())
    return ev("response.completed", response=response("completed", output, **extra))


def answer(*items: Built) -> list[Event]:
    events = head()
    for item_events, _ in items:
        events += item_events
    return numbered([*events, completed([done for _, done in items])])


def text_answer(*pieces: str) -> list[Event]:
    return answer(message(0, *pieces))


def to_sse(events: list[Event]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def fails(match: str) -> Any:
    return pytest.raises(AssertionError, match=match)


def without(events: list[Event], *positions: int) -> list[Event]:
    kept = [e for i, e in enumerate(events) if i not in positions]
    return numbered(kept)


# --- valid streams ---------------------------------------------------------------------------


def test_a_text_answer_parses_and_validates() -> None:
    events = text_answer("Hi", " there", "!")
    raw = b": keep-alive\n\n" + to_sse(events).replace(b"\n", b"\r\n")
    parsed = parse_sse(raw)
    assert parsed == events

    result = validate(parsed)
    assert result["id"] == RESPONSE_ID
    assert result["status"] == "completed"
    assert result["output"][0]["content"][0]["text"] == "Hi there!"
    assert result["usage"]["total_tokens"] == 123


def test_data_lines_without_event_lines_parse() -> None:
    events = text_answer("Hi")
    raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()
    assert parse_sse(raw) == events


def test_a_reasoning_message_and_two_function_calls_answer_validates() -> None:
    events = answer(
        reasoning(0, "**Checking", " the weather**"),
        message(1, "Let me look ", "that up."),
        function_call(1 + 1, '{"location":', ' "Paris"}'),
        function_call(3, '{"location": "Rome"}', item_id=FC_IDS[1], call_id=CALL_IDS[1]),
    )
    result = validate(events)
    assert [item["type"] for item in result["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert result["output"][2]["arguments"] == '{"location": "Paris"}'


def test_a_reasoning_text_item_validates() -> None:
    done = {
        "id": RS_ID,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "Think."}],
    }
    events = numbered(
        [
            *head(),
            ev("response.output_item.added", output_index=0, item={**done, "content": []}),
            sub("response.reasoning_text.delta", 0, RS_ID, content_index=0, delta="Thi"),
            sub("response.reasoning_text.delta", 0, RS_ID, content_index=0, delta="nk."),
            sub("response.reasoning_text.done", 0, RS_ID, content_index=0, text="Think."),
            ev("response.output_item.done", output_index=0, item=done),
            completed([done]),
        ]
    )
    assert validate(events)["output"] == [done]


def test_a_custom_tool_call_validates() -> None:
    result = validate(answer(custom_tool_call(0, "print(", "'hi')")))
    assert result["output"][0]["input"] == "print('hi')"


def test_a_function_call_with_arguments_in_the_added_item_and_no_deltas_validates() -> None:
    events = answer(function_call(0, '{"location": "Oslo"}'))
    events[2]["item"]["arguments"] = '{"location": "Oslo"}'
    del events[3]  # the only delta
    validate(numbered(events))


def test_sequence_numbers_may_start_later_or_be_absent() -> None:
    events = text_answer("Hi")
    validate(numbered(events, start=40))
    validate([{k: v for k, v in e.items() if k != "sequence_number"} for e in events])


def test_a_failed_stream_may_leave_an_item_open() -> None:
    item_events, _ = message(0, "Hel")
    error = {"code": "server_error", "message": "The model crashed."}
    events = numbered(
        [
            *head(),
            *item_events[:3],  # added, part added, one delta
            ev("response.failed", response=response("failed", error=error)),
        ]
    )
    result = validate(events)
    assert result["status"] == "failed"
    assert result["error"] == error


def test_an_incomplete_stream_validates() -> None:
    item_events, done = message(0, "Once upon")
    details = {"reason": "max_output_tokens"}
    terminal = ev(
        "response.incomplete",
        response=response("incomplete", [done], incomplete_details=details, usage=usage()),
    )
    result = validate(numbered([*head(), *item_events, terminal]))
    assert result["incomplete_details"] == details


def test_a_final_error_event_is_accepted_only_when_allowed() -> None:
    events = numbered([*head(), ev("error", code="server_error", message="boom", param=None)])
    with fails(r"event #2 \(error\): error event: 'boom'"):
        validate(events)
    assert validate(events, allow_error_event=True)["message"] == "boom"


# --- framing failures ------------------------------------------------------------------------


def test_a_done_sentinel_fails_parse_sse() -> None:
    raw = to_sse(text_answer("Hi")) + b"data: [DONE]\n\n"
    with fails(r"data: \[DONE\] is Chat Completions' end marker"):
        parse_sse(raw)


def test_non_json_data_fails_parse_sse() -> None:
    with fails("data is not JSON"):
        parse_sse(b"event: response.created\ndata: {nope\n\n")


def test_data_without_a_type_fails_parse_sse() -> None:
    with fails("data has no string type"):
        parse_sse(b'data: {"sequence_number": 0}\n\n')


def test_an_event_line_differing_from_the_type_fails_parse_sse() -> None:
    with fails("differs from its data's type 'response.created'"):
        parse_sse(b'event: response.in_progress\ndata: {"type": "response.created"}\n\n')


def test_trailing_bytes_fail_parse_sse() -> None:
    raw = to_sse(text_answer("Hi")) + b'data: {"type": "response.completed"}'
    with fails("unterminated event"):
        parse_sse(raw)


# --- grammar failures ------------------------------------------------------------------------


def test_a_sequence_gap_fails() -> None:
    events = text_answer("Hi")
    events[5]["sequence_number"] = 6
    with fails(r"event #5 \(response.output_text.done\): sequence_number 6, expected 5"):
        validate(events)


def test_a_missing_sequence_number_fails() -> None:
    events = text_answer("Hi")
    del events[4]["sequence_number"]
    with fails(r"event #4 \(response.output_text.delta\): no sequence_number"):
        validate(events)


def test_a_stream_not_starting_with_created_fails() -> None:
    with fails(r"event #0 \(response.in_progress\): the stream must start with response.created"):
        validate(text_answer("Hi")[1:])


def test_a_changed_response_id_fails() -> None:
    events = text_answer("Hi")
    events[-1]["response"]["id"] = "resp_other"
    with fails("response.id 'resp_other' differs from response.created's"):
        validate(events)


def test_an_item_out_of_order_fails() -> None:
    events = answer(message(0, "Hi"))
    events[2]["output_index"] = 1
    with fails(r"event #2 \(response.output_item.added\): output_index 1, expected 0"):
        validate(events)


def test_an_event_for_item_1_before_item_0_is_done_fails() -> None:
    first, first_done = reasoning(0, "Hmm")
    second, second_done = message(1, "Hi")
    # Item 1 is added only after item 0 is done, but its delta jumps ahead of item 0's done.
    events = numbered([*head(), *first[:-1], second[2], first[-1], *second[:2], *second[3:]])
    events.append({**completed([first_done, second_done]), "sequence_number": len(events)})
    with fails(r"event #7 \(response.output_text.delta\): event for output item 1, but item 0"):
        validate(events)


def test_an_item_added_while_another_is_open_fails() -> None:
    first, _ = reasoning(0, "Hmm")
    second, _ = message(1, "Hi")
    events = numbered([*head(), *first[:-1], *second, first[-1]])
    with fails(r"output item 1 added while item 0 \(reasoning\) is still open"):
        validate(events)


def test_a_missing_output_item_done_fails() -> None:
    events = text_answer("Hi")
    with fails(
        r"response.completed\): output item 0 \(message 'msg_.*'\) was added but never done"
    ):
        validate(without(events, 7))


def test_an_output_item_done_with_another_id_fails() -> None:
    events = text_answer("Hi")
    events[7]["item"] = {**events[7]["item"], "id": "msg_other"}
    with fails("item.id 'msg_other' differs from the added item's"):
        validate(events)


def test_a_text_done_mismatch_fails() -> None:
    events = text_answer("Hel", "lo")
    events[6]["text"] = "Help"
    with fails(
        r"event #6 \(response.output_text.done\): text 'Help' differs from the deltas joined "
        "'Hello'"
    ):
        validate(events)


def test_a_done_message_with_other_text_fails() -> None:
    events = text_answer("Hi")
    events[7]["item"] = copy.deepcopy(events[7]["item"])
    events[7]["item"]["content"][0]["text"] = "Ho"
    with fails(r"output_item.done\): item.content must be 1 output_text part\(s\)"):
        validate(events)


def test_an_arguments_done_mismatch_fails() -> None:
    events = answer(function_call(0, '{"a":', " 1}", arguments='{"a": 2}'))
    with fails(r"function_call_arguments.done\): arguments '\{\"a\": 2\}' differ from the deltas"):
        validate(events)


def test_unparseable_arguments_fail() -> None:
    events = answer(function_call(0, '{"a":', " 1"))
    with fails(r"event #6 \(response.output_item.done\): item.arguments is not JSON"):
        validate(events)


def test_arguments_added_and_streamed_fail() -> None:
    events = answer(function_call(0, '{"a": 1}'))
    events[2]["item"] = {**events[2]["item"], "arguments": "{"}
    with fails("the SDK appends deltas to the added arguments"):
        validate(events)


def test_a_function_call_without_arguments_done_fails() -> None:
    events = answer(function_call(0, "{}"))
    with fails("function_call item done without response.function_call_arguments.done"):
        validate(without(events, 4))


def test_two_terminal_events_fail() -> None:
    events = text_answer("Hi")
    events = numbered([*events, events[-1]])
    with fails(r"event #9 \(response.completed\): nothing may follow response.completed"):
        validate(events)


def test_an_event_after_the_terminal_event_fails() -> None:
    events = text_answer("Hi")
    events = numbered([*events, ev("response.output_text.delta", delta="x")])
    with fails(r"event #9 \(response.output_text.delta\): nothing may follow response.completed"):
        validate(events)


def test_an_error_event_that_is_not_last_fails_even_when_allowed() -> None:
    events = text_answer("Hi")
    events = numbered([*events[:3], ev("error", message="boom"), *events[3:]])
    with fails(r"event #3 \(error\): an error event must be the last event"):
        validate(events, allow_error_event=True)


def test_a_stream_without_a_terminal_event_fails() -> None:
    events = text_answer("Hi")[:-1]
    with fails(r"ended after event #7 \(response.output_item.done\) without response.completed"):
        validate(events)


def test_completed_output_not_matching_the_done_items_fails() -> None:
    events = text_answer("Hi")
    events[-1]["response"]["output"][0] = {**events[-1]["response"]["output"][0], "id": "msg_x"}
    with fails(r"response.output\[0\] differs from output_item.done's item"):
        validate(events)


def test_completed_output_missing_an_item_fails() -> None:
    events = text_answer("Hi")
    events[-1]["response"]["output"] = []
    with fails("response.output has 0 items, but 1 were done"):
        validate(events)


def test_a_usage_total_mismatch_fails() -> None:
    events = text_answer("Hi")
    events[-1]["response"]["usage"]["total_tokens"] = 100
    with fails(r"usage.total_tokens 100 != input_tokens \+ output_tokens \(36 \+ 87 = 123\)"):
        validate(events)


def test_missing_usage_details_fail() -> None:
    events = text_answer("Hi")
    del events[-1]["response"]["usage"]["output_tokens_details"]
    with fails("usage.output_tokens_details must be an object"):
        validate(events)


def test_an_unknown_event_type_fails() -> None:
    events = text_answer("Hi")
    events = numbered([*events[:3], ev("response.output_text.annotation.added"), *events[3:]])
    with fails(r"event #3 \(response.output_text.annotation.added\): unknown event type"):
        validate(events)


def test_an_unknown_item_type_fails() -> None:
    events = text_answer("Hi")
    events[2]["item"] = {"type": "web_search_call", "id": "ws_1", "status": "in_progress"}
    with fails("unsupported item type 'web_search_call'"):
        validate(events)


def test_a_failed_response_needs_an_error_object() -> None:
    events = numbered([*head(), ev("response.failed", response=response("failed"))])
    with fails(r"event #2 \(response.failed\): response.error must be an object"):
        validate(events)


def _with_keepalives(events: list, at: int, n: int = 2) -> list:
    """``events`` with ``n`` keepalive events at ``at``, sequence numbers counted again."""
    beats = [{"type": "keepalive"} for _ in range(n)]
    out = [dict(e) for e in events[:at]] + beats + [dict(e) for e in events[at:]]
    for number, event in enumerate(out):
        event["sequence_number"] = number
    return out


def test_keepalive_events_after_in_progress_validate() -> None:
    events = _with_keepalives(text_answer("Hi"), 2)
    assert validate(events)["output"][0]["content"][0]["text"] == "Hi"
    mid = _with_keepalives(text_answer("Hi", " there"), 5)
    assert validate(mid)["status"] == "completed"


def test_a_keepalive_before_in_progress_or_with_fields_fails() -> None:
    with fails(r"a keepalive comes after response.in_progress"):
        validate(_with_keepalives(text_answer("Hi"), 1))
    events = _with_keepalives(text_answer("Hi"), 2)
    events[2]["response"] = {}
    with fails(r"a keepalive carries nothing else"):
        validate(events)
    events = text_answer("Hi")
    events.append({"type": "keepalive", "sequence_number": len(events)})
    with fails(r"nothing may follow response.completed"):
        validate(events)
