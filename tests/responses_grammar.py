"""A strict checker of OpenAI Responses API streams (server-sent events), for tests.

The grammar comes from OpenAI's Responses API reference, "Streaming events" section
(https://platform.openai.com/docs/api-reference/responses-streaming), cross-checked against the
event and item models the official ``openai`` Python SDK generates from the OpenAPI spec
(``openai.types.responses.*Event``, ``ResponseOutputMessage``, ``ResponseFunctionToolCall``,
``ResponseCustomToolCall``, ``ResponseReasoningItem``, ``ResponseUsage``) and against the SDK's
stream accumulator (``openai.lib.streaming.responses``), which is what most clients run.

``parse_sse(raw)`` checks the framing and returns each event's decoded JSON data:

* every event is an optional ``event: <type>`` line and exactly one ``data: <json>`` line, ended
  by a blank line; lines starting with ``:`` are comments; CRLF, CR and LF line ends are all
  accepted; no other SSE field (``id:``, ``retry:``) appears;
* the data must be a JSON object with a string ``"type"``, which an ``event:`` line, when
  present, repeats; ``data: [DONE]`` fails (that sentinel is Chat Completions'; a Responses
  stream ends with its terminal event); nothing but whitespace may follow the last blank line.

``validate(events)`` checks the event grammar and returns the ``response`` object of the
terminal event:

* ``sequence_number``: if the first event has one, every event has one, and they count up by
  exactly 1 from the first (not necessarily from 0: a resumed stream starts later); if the first
  has none, no event has one;
* ``response.created`` first, then ``response.in_progress``; every event that carries a
  ``response`` (these two and the terminal one) carries the same ``id`` and ``object ==
  "response"``; the first two have status ``"in_progress"`` and ``output == []`` (the SDK
  seeds its output list from ``response.created``, so items there would collide with the
  ``output_index`` of the items added later);
* output items are sequential: ``response.output_item.added`` carries ``output_index`` 0, 1,
  2, ... in order and an item with a ``type`` and a unique ``id``; one item is open at a time;
  every sub-event carries the open item's ``item_id`` and ``output_index``; the item is closed by
  exactly one ``response.output_item.done`` with the same index, id and type, after all of its
  sub-events and before the next item is added. The API documents ``output_index`` as if items
  could interleave, but Codex routes deltas to "the active item" (the last one added) and the
  SDKs' accumulators index the output list by arrival, so a gateway must not interleave;
* ``message`` items (added with role ``"assistant"``, ``content == []``): per content part, in
  order and one part at a time, ``response.content_part.added`` (``content_index`` 0, 1, ...,
  an ``output_text`` part with ``text: ""``), ``response.output_text.delta`` (string
  ``delta``), ``response.output_text.done`` (``text`` == the part's deltas joined),
  ``response.content_part.done`` (the part with the full text); the done item has status
  ``"completed"``, role ``"assistant"`` and one ``output_text`` content part per part, with the
  same text;
* ``reasoning`` items (added with ``summary == []`` when present): summary parts, one at a time,
  as ``response.reasoning_summary_part.added`` (``summary_index`` 0, 1, ..., a
  ``summary_text`` part with ``text: ""``), ``response.reasoning_summary_text.delta``,
  ``response.reasoning_summary_text.done`` (``text`` == deltas joined),
  ``response.reasoning_summary_part.done`` (the part with the full text); and/or reasoning text
  parts as ``response.reasoning_text.delta`` / ``response.reasoning_text.done`` (``content_index``
  0, 1, ...; no part events); the done item's ``summary`` holds one ``summary_text`` per summary
  part and its ``content`` one ``reasoning_text`` per reasoning text part (or is absent, null or
  ``[]`` when there were none), texts matching;
* ``function_call`` items (added with non-empty string ``call_id`` and ``name``, string
  ``arguments``, which must be ``""`` if deltas follow, because the SDK appends the deltas to
  it): ``response.function_call_arguments.delta`` pieces, then exactly one
  ``response.function_call_arguments.done`` whose ``arguments`` equal the deltas joined (or the
  added arguments when there were none); the done item has the same ``call_id`` and ``name``,
  those ``arguments``, which must parse as a JSON object, and status ``"completed"``;
* ``custom_tool_call`` items (added with non-empty ``call_id`` and ``name``): optional
  ``response.custom_tool_call_input.delta`` pieces and at most one
  ``response.custom_tool_call_input.done`` (required after deltas, its ``input`` == deltas
  joined); the done item has the same ``call_id`` and ``name`` and a string ``input`` (equal to
  the streamed one, if any);
* call ids are unique among the tool call items (the SDK identifies those items by call id);
* any other item type fails;
* exactly one terminal event, last: ``response.completed`` (status ``"completed"``),
  ``response.incomplete`` (status ``"incomplete"``, string ``incomplete_details.reason``) or
  ``response.failed`` (status ``"failed"``, ``error`` with string ``code`` and ``message``); a
  stream without one fails. For completed and incomplete every added item is done, the
  response's ``error`` is null, its ``output`` matches the done items one for one (type, id and
  the per-type fields above), and ``usage`` has integer ``input_tokens``, ``output_tokens``,
  ``total_tokens`` (their sum), ``input_tokens_details.cached_tokens`` (at most the input) and
  ``output_tokens_details.reasoning_tokens`` (at most the output). A failed response may leave
  an item open;
* a top-level ``{"type": "error", "message": ...}`` event fails the check, unless the caller
  passes ``allow_error_event=True`` and it is the very last event; the error event's data is
  then returned instead of a response;
* ``keepalive`` (``{"type", "sequence_number"}`` only: OpenAI's heartbeat while a model
  thinks) may come anywhere after ``response.in_progress`` and before the terminal event;
* any other event type fails (see ``EVENT_TYPES``): the API has many more (hosted tools,
  ``response.queued``, refusals, annotations...), but this checker checks what our own gateway
  emits.

Every failure is an ``AssertionError`` naming the event's position and type and what was wrong.
The checks raise explicitly rather than with ``assert``, so they also hold under ``python -O``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tests.sse_text import blocks, is_count, require, short, strict_json

Event = dict[str, Any]

LIFECYCLE_EVENTS = frozenset({"response.created", "response.in_progress"})
TERMINAL_STATUS: dict[str, str] = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}

# The sub-events each output item type accepts between its added and done events.
ITEM_EVENTS: dict[str, frozenset[str]] = {
    "message": frozenset(
        {
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
        }
    ),
    "reasoning": frozenset(
        {
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
        }
    ),
    "function_call": frozenset(
        {"response.function_call_arguments.delta", "response.function_call_arguments.done"}
    ),
    "custom_tool_call": frozenset(
        {"response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"}
    ),
}
ITEM_TYPES = frozenset(ITEM_EVENTS)
SUB_EVENTS = frozenset().union(*ITEM_EVENTS.values())

EVENT_TYPES = frozenset(
    {
        *LIFECYCLE_EVENTS,
        *TERMINAL_STATUS,
        "response.output_item.added",
        "response.output_item.done",
        *SUB_EVENTS,
        "error",
    }
)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


# --- framing ---------------------------------------------------------------------------------


def parse_sse(raw: bytes) -> list[Event]:
    """Split an SSE byte stream into the decoded JSON data of each event, checking framing."""
    events = (_parse_block(block) for block in blocks(raw))
    return [event for event in events if event is not None]


def _parse_block(block: list[tuple[int, str]]) -> Event | None:
    """One blank-line-separated block: its data, or None when it holds only comments."""
    name: str | None = None
    data: tuple[int, str] | None = None
    for lineno, line in block:
        if line.startswith(":"):
            continue
        key, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if key == "event":
            require(name is None, f"line {lineno}: a second event: line in one event")
            name = value
        elif key == "data":
            require(
                data is None,
                f"line {lineno}: a second data: line in one event "
                "(each Responses event is one line of JSON)",
            )
            data = (lineno, value)
        else:
            raise AssertionError(
                f"line {lineno}: unexpected SSE field {key!r} "
                "(Responses streams use only event: and data:)"
            )
    if name is None and data is None:
        return None
    where = f"line {block[0][0]}"
    require(data is not None, f"{where}: event {name!r} has no data: line")
    assert data is not None  # for type checkers; _require has checked it
    lineno, raw_data = data
    require(
        raw_data.strip() != "[DONE]",
        f"line {lineno}: data: [DONE] is Chat Completions' end marker; "
        "the Responses API never sends it (its stream ends with the terminal event)",
    )
    try:
        value = strict_json(raw_data)
    except ValueError as exc:
        raise AssertionError(
            f"line {lineno}: data is not JSON ({exc}): {short(raw_data)}"
        ) from None
    require(
        isinstance(value, dict),
        f"line {lineno}: data is a JSON {type(value).__name__}, not an object",
    )
    kind = value.get("type")
    require(
        isinstance(kind, str) and kind,
        f"line {lineno}: data has no string type: {short(raw_data)}",
    )
    require(
        name is None or name == kind,
        f"{where}: event: line {name!r} differs from its data's type {kind!r}",
    )
    return value  # type: ignore[no-any-return]


# --- grammar ---------------------------------------------------------------------------------


@dataclass
class _Part:
    """One content, summary or reasoning text part of the open item."""

    index: int
    text: str = ""
    stage: str = "open"  # "open" -> "text_done" -> "done" (reasoning text: "open" -> "done")


@dataclass
class _Item:
    """The open output item and what its sub-events have built so far."""

    index: int
    id: str
    type: str
    added: dict[str, Any]
    parts: list[_Part] = field(default_factory=list)  # message content / reasoning summary
    texts: list[_Part] = field(default_factory=list)  # reasoning text (content_index)
    buffer: str = ""  # function call arguments / custom tool input deltas joined
    streamed: bool = False  # a delta arrived
    final: str | None = None  # the arguments / input of the .done event


def _open(parts: list[_Part]) -> _Part | None:
    return parts[-1] if parts and parts[-1].stage != "done" else None


class _Checker:
    """Consumes events one at a time, keeping the state of the grammar."""

    def __init__(self, allow_error_event: bool) -> None:
        self.allow_error_event = allow_error_event
        self.i = -1
        self.type = "?"
        self.sequence_base: int | None = None
        self.response_id: str | None = None
        self.lifecycle = 0  # how many of created, in_progress have been seen
        self.item: _Item | None = None
        self.done: list[dict[str, Any]] = []  # the done items, in order
        self.item_ids: set[str] = set()
        self.call_ids: set[str] = set()
        self.end: tuple[str, int] | None = None  # the terminal (or error) event and its position
        self.result: dict[str, Any] | None = None

    def fail(self, what: str) -> NoReturn:
        raise AssertionError(f"event #{self.i} ({self.type}): {what}")

    def need(self, condition: object, what: str) -> None:
        if not condition:
            self.fail(what)

    def count(self, data: dict[str, Any], key: str) -> int:
        value = data.get(key)
        self.need(is_count(value), f"{key} must be a non-negative integer, got {value!r}")
        return value  # type: ignore[no-any-return]

    def string(self, data: dict[str, Any], key: str, where: str = "") -> str:
        value = data.get(key)
        self.need(isinstance(value, str), f"{where}{key} must be a string, got {value!r}")
        return value  # type: ignore[no-any-return]

    def obj(self, data: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
        value = data.get(key)
        self.need(isinstance(value, dict), f"{where}{key} must be an object, got {value!r}")
        return value  # type: ignore[no-any-return]

    # The entry point -----------------------------------------------------------------------

    def feed(self, i: int, data: object, last: bool) -> None:
        self.i, self.type = i, "?"
        self.need(isinstance(data, dict), f"an event must be a JSON object, got {data!r}")
        assert isinstance(data, dict)
        kind = data.get("type")
        self.need(isinstance(kind, str) and kind, f"event has no string type: {data!r}")
        self.type = kind
        self.check_sequence(data)
        if self.end is not None:
            self.fail(f"nothing may follow {self.end[0]} (event #{self.end[1]})")
        if kind == "keepalive":  # the API's heartbeat while a model thinks: nothing else
            self.need(self.lifecycle >= 2, "a keepalive comes after response.in_progress")
            extra = set(data) - {"type", "sequence_number"}
            self.need(not extra, f"a keepalive carries nothing else, got {sorted(extra)}")
            return
        self.need(kind in EVENT_TYPES, f"unknown event type {kind!r}")
        if kind == "error":
            self.on_error(data, last)
            return
        if self.lifecycle == 0:
            self.need(kind == "response.created", "the stream must start with response.created")
        elif self.lifecycle == 1:
            self.need(
                kind == "response.in_progress",
                "response.in_progress must come right after response.created",
            )
        if kind in SUB_EVENTS:
            self.on_sub_event(data)
        else:
            getattr(self, "on_" + kind.removeprefix("response.").replace(".", "_"))(data)

    def check_sequence(self, data: dict[str, Any]) -> None:
        number = data.get("sequence_number")
        if self.i == 0:
            if "sequence_number" in data:
                self.need(
                    is_count(number),
                    f"sequence_number must be a non-negative integer, got {number!r}",
                )
                self.sequence_base = number
            return
        if self.sequence_base is None:
            self.need(
                "sequence_number" not in data,
                "has a sequence_number, but event #0 has none (all events or none carry one)",
            )
            return
        expected = self.sequence_base + self.i
        self.need(
            "sequence_number" in data,
            f"no sequence_number, but event #0 has one (expected {expected})",
        )
        self.need(
            number == expected and is_count(number),
            f"sequence_number {number!r}, expected {expected} (they count up by 1)",
        )

    # Lifecycle -----------------------------------------------------------------------------

    def response(self, data: dict[str, Any], status: str) -> dict[str, Any]:
        response = self.obj(data, "response")
        rid = response.get("id")
        self.need(_is_name(rid), f"response.id must be a non-empty string, got {rid!r}")
        if self.response_id is None:
            self.response_id = rid
        self.need(
            rid == self.response_id,
            f"response.id {rid!r} differs from response.created's {self.response_id!r}",
        )
        self.need(
            response.get("object") == "response",
            f"response.object must be 'response', got {response.get('object')!r}",
        )
        self.need(
            response.get("status") == status,
            f"response.status must be {status!r}, got {response.get('status')!r}",
        )
        return response

    def on_created(self, data: dict[str, Any]) -> None:
        self.need(self.lifecycle == 0, "a second response.created")
        self.lifecycle_response(data)

    def on_in_progress(self, data: dict[str, Any]) -> None:
        self.need(self.lifecycle == 1, "a second response.in_progress")
        self.lifecycle_response(data)

    def lifecycle_response(self, data: dict[str, Any]) -> None:
        response = self.response(data, "in_progress")
        output = response.get("output")
        self.need(output == [], f"response.output must be [] here, got {output!r}")
        self.lifecycle += 1

    def on_completed(self, data: dict[str, Any]) -> None:
        response = self.response(data, "completed")
        self.finished_response(response)
        details = response.get("incomplete_details")
        self.need(details is None, f"a completed response has incomplete_details {details!r}")
        self.terminate(response)

    def on_incomplete(self, data: dict[str, Any]) -> None:
        response = self.response(data, "incomplete")
        details = self.obj(response, "incomplete_details", "response.")
        self.string(details, "reason", "response.incomplete_details.")
        self.finished_response(response)
        self.terminate(response)

    def on_failed(self, data: dict[str, Any]) -> None:
        response = self.response(data, "failed")
        error = self.obj(response, "error", "response.")
        self.string(error, "code", "response.error.")
        self.string(error, "message", "response.error.")
        self.need(
            isinstance(response.get("output", []), list),
            f"response.output must be a list, got {response.get('output')!r}",
        )
        self.terminate(response)

    def terminate(self, response: dict[str, Any]) -> None:
        self.end = (self.type, self.i)
        self.result = copy.deepcopy(response)

    def finished_response(self, response: dict[str, Any]) -> None:
        """The checks shared by response.completed and response.incomplete."""
        if self.item is not None:
            self.fail(
                f"output item {self.item.index} ({self.item.type} {self.item.id!r}) "
                "was added but never done"
            )
        self.need(
            response.get("error") is None,
            f"response.error must be null, got {response.get('error')!r}",
        )
        output = response.get("output")
        self.need(isinstance(output, list), f"response.output must be a list, got {output!r}")
        assert isinstance(output, list)
        self.need(
            len(output) == len(self.done),
            f"response.output has {len(output)} items, but {len(self.done)} were done",
        )
        for index, (item, done) in enumerate(zip(output, self.done, strict=True)):
            got, want = _essence(item), _essence(done)
            self.need(
                got == want,
                f"response.output[{index}] differs from output_item.done's item: "
                f"{short(json.dumps(got))} != {short(json.dumps(want))}",
            )
        self.check_usage(response)

    def check_usage(self, response: dict[str, Any]) -> None:
        usage = self.obj(response, "usage", "response.")
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            self.need(
                is_count(usage.get(key)),
                f"usage.{key} must be a non-negative integer, got {usage.get(key)!r}",
            )
        total = usage["input_tokens"] + usage["output_tokens"]
        self.need(
            usage["total_tokens"] == total,
            f"usage.total_tokens {usage['total_tokens']} != input_tokens + output_tokens "
            f"({usage['input_tokens']} + {usage['output_tokens']} = {total})",
        )
        for details, key, bound in (
            ("input_tokens_details", "cached_tokens", "input_tokens"),
            ("output_tokens_details", "reasoning_tokens", "output_tokens"),
        ):
            part = self.obj(usage, details, "usage.")
            value = part.get(key)
            self.need(
                is_count(value),
                f"usage.{details}.{key} must be a non-negative integer, got {value!r}",
            )
            self.need(
                value <= usage[bound],
                f"usage.{details}.{key} {value} exceeds usage.{bound} {usage[bound]}",
            )

    def on_error(self, data: dict[str, Any], last: bool) -> None:
        message = data.get("message")
        self.need(
            self.allow_error_event,
            f"error event: {message!r} (pass allow_error_event=True to accept a stream that "
            "ends with one)",
        )
        self.need(last, "an error event must be the last event of the stream")
        self.string(data, "message")
        for key in ("code", "param"):
            value = data.get(key)
            self.need(
                value is None or isinstance(value, str),
                f"{key} must be a string or null, got {value!r}",
            )
        self.end = ("error", self.i)
        self.result = copy.deepcopy(data)

    # Output items --------------------------------------------------------------------------

    def on_output_item_added(self, data: dict[str, Any]) -> None:
        index = self.count(data, "output_index")
        if self.item is not None:
            self.fail(
                f"output item {index} added while item {self.item.index} ({self.item.type}) "
                "is still open (no response.output_item.done)"
            )
        expected = len(self.done)
        self.need(
            index == expected,
            f"output_index {index}, expected {expected} (items are added as 0, 1, 2, ... in order)",
        )
        item = self.obj(data, "item")
        kind = item.get("type")
        self.need(
            kind in ITEM_TYPES,
            f"unsupported item type {kind!r} (supported: {sorted(ITEM_TYPES)})",
        )
        item_id = item.get("id")
        self.need(_is_name(item_id), f"item.id must be a non-empty string, got {item_id!r}")
        self.need(item_id not in self.item_ids, f"item.id {item_id!r} was used before")
        if kind == "message":
            self.need(
                item.get("role") == "assistant",
                f"message item role must be 'assistant', got {item.get('role')!r}",
            )
            self.need(
                item.get("content") == [],
                f"message item must be added with content [], got {item.get('content')!r}",
            )
        elif kind == "reasoning":
            self.need(
                item.get("summary", []) == [],
                f"reasoning item must be added with summary [], got {item.get('summary')!r}",
            )
        else:
            self.call_item(item)
            if kind == "function_call":
                self.string(item, "arguments", "item.")
            else:
                self.need(
                    isinstance(item.get("input", ""), str),
                    f"item.input must be a string, got {item.get('input')!r}",
                )
        if "status" in item:
            self.need(
                item["status"] == "in_progress",
                f"item.status must be 'in_progress' when added, got {item['status']!r}",
            )
        self.item = _Item(index, item_id, kind, copy.deepcopy(item))  # type: ignore[arg-type]
        self.item_ids.add(item_id)  # type: ignore[arg-type]

    def call_item(self, item: dict[str, Any]) -> None:
        for key in ("call_id", "name"):
            self.need(
                _is_name(item.get(key)),
                f"item.{key} must be a non-empty string, got {item.get(key)!r}",
            )
        self.need(
            item["call_id"] not in self.call_ids,
            f"item.call_id {item['call_id']!r} was used before",
        )
        self.call_ids.add(item["call_id"])

    def on_output_item_done(self, data: dict[str, Any]) -> None:
        index = self.count(data, "output_index")
        item = self.item
        if item is None:
            self.fail(f"output_item.done for item {index}, but no item is open")
        self.need(
            index == item.index,
            f"output_item.done for item {index}, but item {item.index} is open",
        )
        done = self.obj(data, "item")
        self.need(
            done.get("id") == item.id,
            f"item.id {done.get('id')!r} differs from the added item's {item.id!r}",
        )
        self.need(
            done.get("type") == item.type,
            f"item.type {done.get('type')!r} differs from the added item's {item.type!r}",
        )
        getattr(self, "done_" + item.type)(item, done)
        self.done.append(copy.deepcopy(done))
        self.item = None

    def done_message(self, item: _Item, done: dict[str, Any]) -> None:
        part = _open(item.parts)
        self.need(part is None, f"content part {part and part.index} is still open")
        self.completed(done)
        self.need(
            done.get("role") == "assistant",
            f"item.role must be 'assistant', got {done.get('role')!r}",
        )
        content = done.get("content")
        want = [("output_text", p.text) for p in item.parts]
        self.need(
            isinstance(content, list) and _texts(content) == want,
            f"item.content must be {len(want)} output_text part(s) with the streamed text "
            f"{[text for _, text in want]!r}, got {short(json.dumps(content))}",
        )

    def done_reasoning(self, item: _Item, done: dict[str, Any]) -> None:
        part = _open(item.parts)
        self.need(part is None, f"summary part {part and part.index} is still open")
        text = _open(item.texts)
        self.need(text is None, f"reasoning text {text and text.index} is not done")
        summary = done.get("summary")
        want = [("summary_text", p.text) for p in item.parts]
        self.need(
            isinstance(summary, list) and _texts(summary) == want,
            f"item.summary must be {len(want)} summary_text part(s) with the streamed text "
            f"{[text for _, text in want]!r}, got {short(json.dumps(summary))}",
        )
        content = done.get("content")
        want = [("reasoning_text", p.text) for p in item.texts]
        self.need(
            (content is None and not want)
            or (isinstance(content, list) and _texts(content) == want),
            f"item.content must be {len(want)} reasoning_text part(s) with the streamed text "
            f"{[text for _, text in want]!r}, got {short(json.dumps(content))}",
        )

    def done_function_call(self, item: _Item, done: dict[str, Any]) -> None:
        self.need(
            item.final is not None,
            "function_call item done without response.function_call_arguments.done",
        )
        self.same_call(item, done)
        arguments = self.string(done, "arguments", "item.")
        self.need(
            arguments == item.final,
            f"item.arguments {short(arguments)} differs from function_call_arguments.done's "
            f"{short(item.final or '')}",
        )
        try:
            parsed = strict_json(arguments)
        except ValueError as exc:
            self.fail(f"item.arguments is not JSON ({exc}): {short(arguments)}")
        self.need(
            isinstance(parsed, dict),
            f"item.arguments is a JSON {type(parsed).__name__}, not an object",
        )
        self.completed(done)

    def done_custom_tool_call(self, item: _Item, done: dict[str, Any]) -> None:
        self.need(
            item.final is not None or not item.streamed,
            "custom_tool_call_input.delta without response.custom_tool_call_input.done",
        )
        self.same_call(item, done)
        value = self.string(done, "input", "item.")
        self.need(
            item.final is None or value == item.final,
            f"item.input {short(value)} differs from custom_tool_call_input.done's "
            f"{short(item.final or '')}",
        )

    def same_call(self, item: _Item, done: dict[str, Any]) -> None:
        for key in ("call_id", "name"):
            self.need(
                done.get(key) == item.added[key],
                f"item.{key} {done.get(key)!r} differs from the added item's {item.added[key]!r}",
            )

    def completed(self, done: dict[str, Any]) -> None:
        self.need(
            done.get("status") == "completed",
            f"item.status must be 'completed', got {done.get('status')!r}",
        )

    # Sub-events of the open item -----------------------------------------------------------

    def on_sub_event(self, data: dict[str, Any]) -> None:
        index = self.count(data, "output_index")
        item = self.item
        if item is None:
            self.fail(f"event for output item {index}, but no item is open")
        self.need(
            index == item.index,
            f"event for output item {index}, but item {item.index} is open "
            "(items are sequential: no events for another item until it is done)",
        )
        self.need(
            data.get("item_id") == item.id,
            f"item_id {data.get('item_id')!r} is not the open item's id {item.id!r}",
        )
        self.need(
            self.type in ITEM_EVENTS[item.type],
            f"not allowed in a {item.type} item (allowed: {sorted(ITEM_EVENTS[item.type])})",
        )
        getattr(self, "on_" + self.type.removeprefix("response.").replace(".", "_"))(item, data)

    def add_part(self, parts: list[_Part], data: dict[str, Any], key: str, kind: str) -> None:
        index = self.count(data, key)
        part = _open(parts)
        self.need(part is None, f"{key} {index} added while part {part and part.index} is open")
        self.need(
            index == len(parts),
            f"{key} {index}, expected {len(parts)} (parts are added as 0, 1, 2, ... in order)",
        )
        body = self.obj(data, "part")
        self.need(
            body.get("type") == kind and body.get("text") == "",
            f'part must be {{"type": "{kind}", "text": ""}}, got {body!r}',
        )
        parts.append(_Part(index))

    def find_part(self, parts: list[_Part], data: dict[str, Any], key: str) -> _Part:
        index = self.count(data, key)
        self.need(index < len(parts), f"{key} {index} was never added")
        part = _open(parts)
        self.need(part is not None and part.index == index, f"{key} {index} is already done")
        return part  # type: ignore[return-value]

    def part_delta(self, parts: list[_Part], data: dict[str, Any], key: str) -> None:
        part = self.find_part(parts, data, key)
        self.need(part.stage == "open", f"a delta after {key} {part.index}'s text was done")
        part.text += self.string(data, "delta")

    def part_text_done(self, parts: list[_Part], data: dict[str, Any], key: str) -> None:
        part = self.find_part(parts, data, key)
        self.need(part.stage == "open", f"a second text done event for {key} {part.index}")
        text = self.string(data, "text")
        self.need(
            text == part.text,
            f"text {short(text)} differs from the deltas joined {short(part.text)}",
        )
        part.stage = "text_done"

    def part_done(self, parts: list[_Part], data: dict[str, Any], key: str, kind: str) -> None:
        part = self.find_part(parts, data, key)
        self.need(part.stage == "text_done", f"{key} {part.index} done before its text was done")
        body = self.obj(data, "part")
        self.need(
            body.get("type") == kind and body.get("text") == part.text,
            f"part must be {{'type': {kind!r}, 'text': {short(part.text)}}}, got {body!r}",
        )
        part.stage = "done"

    # message

    def on_content_part_added(self, item: _Item, data: dict[str, Any]) -> None:
        self.add_part(item.parts, data, "content_index", "output_text")

    def on_output_text_delta(self, item: _Item, data: dict[str, Any]) -> None:
        self.part_delta(item.parts, data, "content_index")

    def on_output_text_done(self, item: _Item, data: dict[str, Any]) -> None:
        self.part_text_done(item.parts, data, "content_index")

    def on_content_part_done(self, item: _Item, data: dict[str, Any]) -> None:
        self.part_done(item.parts, data, "content_index", "output_text")

    # reasoning

    def on_reasoning_summary_part_added(self, item: _Item, data: dict[str, Any]) -> None:
        text = _open(item.texts)
        self.need(
            text is None, f"summary part added while reasoning text {text and text.index} is open"
        )
        self.add_part(item.parts, data, "summary_index", "summary_text")

    def on_reasoning_summary_text_delta(self, item: _Item, data: dict[str, Any]) -> None:
        self.part_delta(item.parts, data, "summary_index")

    def on_reasoning_summary_text_done(self, item: _Item, data: dict[str, Any]) -> None:
        self.part_text_done(item.parts, data, "summary_index")

    def on_reasoning_summary_part_done(self, item: _Item, data: dict[str, Any]) -> None:
        self.part_done(item.parts, data, "summary_index", "summary_text")

    def reasoning_text(self, item: _Item, data: dict[str, Any]) -> _Part:
        """The reasoning text part content_index names: the open one, or the next new one."""
        index = self.count(data, "content_index")
        text = _open(item.texts)
        if text is not None and text.index == index:
            return text
        self.need(
            text is None,
            f"content_index {index}, but reasoning text {text and text.index} is not done",
        )
        part = _open(item.parts)
        self.need(
            part is None,
            f"reasoning text starts while summary part {part and part.index} is open",
        )
        self.need(
            index == len(item.texts),
            f"content_index {index}, expected {len(item.texts)} "
            "(reasoning texts are numbered 0, 1, 2, ... in order)",
        )
        item.texts.append(_Part(index))
        return item.texts[-1]

    def on_reasoning_text_delta(self, item: _Item, data: dict[str, Any]) -> None:
        self.reasoning_text(item, data).text += self.string(data, "delta")

    def on_reasoning_text_done(self, item: _Item, data: dict[str, Any]) -> None:
        part = self.reasoning_text(item, data)
        text = self.string(data, "text")
        self.need(
            text == part.text,
            f"text {short(text)} differs from the deltas joined {short(part.text)}",
        )
        part.stage = "done"

    # function_call

    def on_function_call_arguments_delta(self, item: _Item, data: dict[str, Any]) -> None:
        self.need(item.final is None, "a delta after function_call_arguments.done")
        if not item.streamed:
            self.need(
                item.added["arguments"] == "",
                f"the item was added with arguments {short(item.added['arguments'])} and "
                "deltas follow (the SDK appends deltas to the added arguments)",
            )
        item.buffer += self.string(data, "delta")
        item.streamed = True

    def on_function_call_arguments_done(self, item: _Item, data: dict[str, Any]) -> None:
        self.need(item.final is None, "a second function_call_arguments.done")
        arguments = self.string(data, "arguments")
        want = item.buffer if item.streamed else item.added["arguments"]
        self.need(
            arguments == want,
            f"arguments {short(arguments)} differ from "
            + ("the deltas joined" if item.streamed else "the added item's arguments")
            + f" {short(want)}",
        )
        if "name" in data:
            self.need(
                data["name"] == item.added["name"],
                f"name {data['name']!r} differs from the added item's {item.added['name']!r}",
            )
        item.final = arguments

    # custom_tool_call

    def on_custom_tool_call_input_delta(self, item: _Item, data: dict[str, Any]) -> None:
        self.need(item.final is None, "a delta after custom_tool_call_input.done")
        if not item.streamed:
            self.need(
                item.added.get("input", "") == "",
                f"the item was added with input {short(item.added['input'])} and deltas follow",
            )
        item.buffer += self.string(data, "delta")
        item.streamed = True

    def on_custom_tool_call_input_done(self, item: _Item, data: dict[str, Any]) -> None:
        self.need(item.final is None, "a second custom_tool_call_input.done")
        value = self.string(data, "input")
        want = item.buffer if item.streamed else item.added.get("input", "")
        self.need(
            value == want,
            f"input {short(value)} differs from "
            + ("the deltas joined" if item.streamed else "the added item's input")
            + f" {short(want)}",
        )
        item.final = value

    # The result ----------------------------------------------------------------------------

    def finish(self, count: int) -> dict[str, Any]:
        if self.result is None:
            raise AssertionError(
                f"the stream ended after event #{count - 1} ({self.type}) without "
                "response.completed, response.incomplete or response.failed"
            )
        return self.result


def _texts(parts: list[Any]) -> list[tuple[Any, Any]]:
    return [(p.get("type"), p.get("text")) if isinstance(p, dict) else (None, p) for p in parts]


# The fields compared between a terminal response's output and the output_item.done items.
_COMPARED: dict[str, tuple[str, ...]] = {
    "message": ("status", "role"),
    "reasoning": (),
    "function_call": ("call_id", "name", "arguments", "status"),
    "custom_tool_call": ("call_id", "name", "input"),
}


def _essence(item: object) -> dict[str, Any]:
    """The part of an output item that must agree between output_item.done and the response."""
    if not isinstance(item, dict):
        return {"not an object": item}
    kind = item.get("type")
    essence = {"type": kind, "id": item.get("id")}
    for key in _COMPARED.get(kind, ()):  # type: ignore[arg-type]
        essence[key] = item.get(key)
    for key in ("content", "summary") if kind in ("message", "reasoning") else ():
        value = item.get(key)
        if key == "content" and kind == "reasoning" and value is None:
            value = []
        essence[key] = _texts(value) if isinstance(value, list) else value
    return essence


def validate(events: Sequence[Event], *, allow_error_event: bool = False) -> dict[str, Any]:
    """Check a stream's events against the grammar; return the terminal event's response.

    With ``allow_error_event=True`` a stream may end with a top-level ``error`` event instead of
    a terminal response event; that event's data is then returned (its ``"type"`` is
    ``"error"``, where a response object has ``"object": "response"``).
    """
    require(
        isinstance(events, Sequence) and not isinstance(events, (str, bytes)),
        f"expected a sequence of event objects, got {type(events).__name__}",
    )
    require(events, "empty stream: expected response.created ... response.completed")
    checker = _Checker(allow_error_event)
    for i, event in enumerate(events):
        checker.feed(i, event, i == len(events) - 1)
    return checker.finish(len(events))
