"""A strict checker of Anthropic Messages API streams (server-sent events), for tests.

The grammar comes from Anthropic's "Streaming Messages" documentation page
(https://docs.anthropic.com/en/docs/build-with-claude/streaming, now served at
https://platform.claude.com/docs/en/build-with-claude/streaming): its sections "Event types",
"Delta types" and "Raw HTTP Stream response" and the example streams on that page. The list of
stop reasons also follows the official Python SDK's generated ``anthropic.types.StopReason``.

``parse_sse(raw)`` checks the framing and returns ``(event name, JSON data)`` pairs:

* every event is an ``event: <name>`` line and ``data: <json>`` line(s), ended by a blank line;
  lines starting with ``:`` are comments; CRLF, CR and LF line ends are all accepted;
* the data must be a JSON object whose ``"type"`` repeats the event name (Anthropic always
  does), an event must have data, no field other than ``event`` and ``data`` may appear, and
  nothing but whitespace may follow the last blank line (that would be an unterminated event).

``validate(events)`` checks the event grammar and returns the assembled message, shaped like
the SDK's final message (``id``, ``model``, ``role``, ``content`` with full text, thinking,
signature and parsed tool input, ``stop_reason``, ``stop_sequence``, ``usage``):

* ``message_start`` comes exactly once and first (only ``ping`` may precede it); its message
  has type ``"message"``, role ``"assistant"``, an id, a model, ``content == []``, a null
  ``stop_reason`` (and a null ``stop_sequence`` if present), and integer usage ``input_tokens``
  (> 0 when the request had input) and ``output_tokens``;
* content blocks are sequential: ``content_block_start`` carries index 0, 1, 2, ... in order,
  one block is open at a time, every ``content_block_delta`` targets the open block, and every
  block is closed by ``content_block_stop`` with its index before the next block starts and
  before ``message_delta``;
* block types and the deltas each accepts: ``text`` (starts with ``text: ""``; ``text_delta``),
  ``thinking`` (starts with ``thinking: ""``, a string ``signature`` is optional;
  ``thinking_delta``, then exactly one ``signature_delta`` which must arrive before the block
  stops, and no ``thinking_delta`` after it), ``redacted_thinking`` (starts with ``data``; no
  deltas), ``tool_use`` (starts with an ``id`` matching ``[a-zA-Z0-9_-]+``, a non-empty
  ``name`` and ``input == {}``; ``input_json_delta`` whose concatenated ``partial_json`` must
  parse as a JSON object, or be empty, meaning ``{}``);
* exactly one ``message_delta``, after every block is closed, whose ``delta.stop_reason`` is
  one of ``STOP_REASONS`` and whose ``usage.output_tokens`` is an integer; ``"tool_use"`` needs
  a tool_use block, ``"stop_sequence"`` needs a string ``delta.stop_sequence`` (any other stop
  reason needs it null or absent);
* ``message_stop`` exactly once, after ``message_delta``, and nothing after it;
* ``ping`` anywhere before the end;
* ``error`` (``{"type": "error", "error": {"type": ..., "message": ...}}``) ends the stream at
  any point, even with a block open or before ``message_start``; nothing may follow it, and the
  partial message is returned with an extra ``"error"`` key;
* any other event name fails (the docs ask clients to tolerate new event types; this checker
  is deliberately stricter, because it checks what our own gateway emits).

Every failure is an ``AssertionError`` naming the event's position and what was wrong. The
checks raise explicitly rather than with ``assert``, so they also hold under ``python -O``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from tests.sse_text import blocks, is_count, require, short, strict_json

Event = tuple[str, dict[str, Any]]

EVENT_NAMES = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)

# The docs' list plus "model_context_window_exceeded", which the SDK's generated StopReason has.
STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)

# Which content_block_delta types each content block type accepts.
BLOCK_DELTAS: dict[str, frozenset[str]] = {
    "text": frozenset({"text_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "redacted_thinking": frozenset(),
    "tool_use": frozenset({"input_json_delta"}),
}

TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")

_USAGE_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


# --- framing ---------------------------------------------------------------------------------


def parse_sse(raw: bytes) -> list[Event]:
    """Split an SSE byte stream into (event name, decoded JSON data) pairs, checking framing."""
    events = (_parse_block(block) for block in blocks(raw))
    return [event for event in events if event is not None]


def _parse_block(block: list[tuple[int, str]]) -> Event | None:
    """One blank-line-separated block: its event, or None when it holds only comments."""
    name: str | None = None
    data_lines: list[str] = []
    where = f"line {block[0][0]}"
    data_at = where
    for lineno, line in block:
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            require(name is None, f"line {lineno}: a second event: line in one event")
            name = value
        elif field == "data":
            if not data_lines:
                data_at = f"line {lineno}"
            data_lines.append(value)
        else:
            raise AssertionError(
                f"line {lineno}: unexpected SSE field {field!r} "
                "(Anthropic streams use only event: and data:)"
            )
    if name is None and not data_lines:
        return None
    require(name, f"{where}: event block without an event: name")
    assert name is not None  # for type checkers; _require has checked it
    require(data_lines, f"{where}: event {name!r} has no data: line")
    raw_data = "\n".join(data_lines)
    try:
        data = strict_json(raw_data)
    except ValueError as exc:
        raise AssertionError(
            f"{data_at}: event {name!r}: data is not JSON ({exc}): {short(raw_data)}"
        ) from None
    require(
        isinstance(data, dict),
        f"{data_at}: event {name!r}: data is a JSON {type(data).__name__}, not an object",
    )
    require(
        data.get("type") == name,
        f"{where}: event name {name!r} differs from its data's type {data.get('type')!r}",
    )
    return name, data


# --- grammar ---------------------------------------------------------------------------------


class _Checker:
    """Consumes events one at a time, keeping the state of the grammar and the message."""

    def __init__(self, request_had_input: bool) -> None:
        self.request_had_input = request_had_input
        self.message: dict[str, Any] | None = None
        self.start_at = -1
        self.blocks: list[dict[str, Any]] = []
        self.open: int | None = None  # index of the open block
        self.json_buf = ""  # concatenated partial_json of the open tool_use block
        self.signed = False  # the open thinking block has had its signature_delta
        self.delta_at = -1  # position of message_delta
        self.end: tuple[str, int] | None = None  # message_stop or error, and its position
        self.error: dict[str, Any] | None = None
        self.i = -1
        self.name = ""

    def fail(self, what: str) -> NoReturn:
        raise AssertionError(f"event #{self.i} ({self.name}): {what}")

    def need(self, condition: object, what: str) -> None:
        if not condition:
            self.fail(what)

    def index_of(self, data: dict[str, Any]) -> int:
        index = data.get("index")
        self.need(is_count(index), f"index must be a non-negative integer, got {index!r}")
        return index  # type: ignore[no-any-return]

    def need_message(self) -> None:
        self.need(self.message is not None, "comes before message_start")
        self.need(self.delta_at < 0, f"comes after message_delta (event #{self.delta_at})")

    # The entry point -----------------------------------------------------------------------

    def feed(self, i: int, event: object) -> None:
        self.i, self.name = i, "?"
        self.need(
            isinstance(event, tuple) and len(event) == 2,
            f"an event must be a (name, data) pair, got {event!r}",
        )
        name, data = event  # type: ignore[misc]
        self.need(isinstance(name, str), f"event name must be a string, got {name!r}")
        self.name = name
        if self.end is not None:
            self.fail(f"nothing may follow {self.end[0]} (event #{self.end[1]})")
        self.need(isinstance(data, dict), f"data must be a JSON object, got {data!r}")
        self.need(
            data.get("type") == name,
            f"event name differs from its data's type {data.get('type')!r}",
        )
        self.need(name in EVENT_NAMES, f"unknown event name {name!r}")
        getattr(self, "on_" + name)(data)

    # One method per event ------------------------------------------------------------------

    def on_ping(self, data: dict[str, Any]) -> None:
        pass

    def on_message_start(self, data: dict[str, Any]) -> None:
        self.need(self.message is None, f"duplicate message_start (first at #{self.start_at})")
        msg = data.get("message")
        self.need(isinstance(msg, dict), f"message must be an object, got {msg!r}")
        assert isinstance(msg, dict)
        self.need(msg.get("type") == "message", f"message.type {msg.get('type')!r} != 'message'")
        self.need(
            msg.get("role") == "assistant", f"message.role {msg.get('role')!r} != 'assistant'"
        )
        for key in ("id", "model"):
            self.need(
                isinstance(msg.get(key), str) and msg[key],
                f"message.{key} must be a non-empty string, got {msg.get(key)!r}",
            )
        content = msg.get("content")
        self.need(content == [], f"message.content must be [], got {content!r}")
        self.need(
            "stop_reason" in msg and msg["stop_reason"] is None,
            f"message.stop_reason must be null, got {msg.get('stop_reason', '<absent>')!r}",
        )
        self.need(
            msg.get("stop_sequence") is None,
            f"message.stop_sequence must be null, got {msg.get('stop_sequence')!r}",
        )
        usage = msg.get("usage")
        self.need(isinstance(usage, dict), f"message.usage must be an object, got {usage!r}")
        assert isinstance(usage, dict)
        for key in ("input_tokens", "output_tokens"):
            self.need(
                is_count(usage.get(key)),
                f"message.usage.{key} must be a non-negative integer, got {usage.get(key)!r}",
            )
        if self.request_had_input:
            self.need(
                usage["input_tokens"] > 0,
                "message.usage.input_tokens is 0, but the request had input",
            )
        self.message = copy.deepcopy(msg)
        self.message["content"] = self.blocks
        self.start_at = self.i

    def on_content_block_start(self, data: dict[str, Any]) -> None:
        self.need_message()
        index = self.index_of(data)
        self.need(
            self.open is None,
            f"block {index} starts while block {self.open} is still open (no content_block_stop)",
        )
        expected = len(self.blocks)
        self.need(
            index == expected,
            f"content_block_start index {index}, expected {expected} "
            "(blocks are numbered 0, 1, 2, ... in order)",
        )
        block = data.get("content_block")
        self.need(isinstance(block, dict), f"content_block must be an object, got {block!r}")
        assert isinstance(block, dict)
        kind = block.get("type")
        if kind == "text":
            self.need(block.get("text") == "", f'text block must start with text "": {block!r}')
        elif kind == "thinking":
            self.need(
                block.get("thinking") == "",
                f'thinking block must start with thinking "": {block!r}',
            )
            self.need(
                isinstance(block.get("signature", ""), str),
                f"thinking block's signature must be a string: {block!r}",
            )
        elif kind == "redacted_thinking":
            self.need(
                isinstance(block.get("data"), str) and block["data"],
                f"redacted_thinking block must carry a non-empty data string: {block!r}",
            )
        elif kind == "tool_use":
            tool_id = block.get("id")
            self.need(
                isinstance(tool_id, str) and TOOL_ID.fullmatch(tool_id),
                f"tool_use id {tool_id!r} does not match ^[a-zA-Z0-9_-]+$",
            )
            self.need(
                isinstance(block.get("name"), str) and block["name"],
                f"tool_use name must be a non-empty string, got {block.get('name')!r}",
            )
            tool_input = block.get("input", "<absent>")
            self.need(
                tool_input == {} and isinstance(tool_input, dict),
                f"tool_use block must start with input {{}}, got {tool_input!r}",
            )
        else:
            self.fail(f"unsupported content block type {kind!r}")
        self.blocks.append(copy.deepcopy(block))
        self.open = index
        self.json_buf = ""
        self.signed = False

    def on_content_block_delta(self, data: dict[str, Any]) -> None:
        self.need_message()
        index = self.index_of(data)
        self.need(self.open is not None, f"delta for block {index}, but no block is open")
        self.need(index == self.open, f"delta targets block {index}, but block {self.open} is open")
        block = self.blocks[index]
        delta = data.get("delta")
        self.need(isinstance(delta, dict), f"delta must be an object, got {delta!r}")
        assert isinstance(delta, dict)
        kind = delta.get("type")
        allowed = BLOCK_DELTAS[block["type"]]
        self.need(
            isinstance(kind, str) and kind in allowed,
            f"delta type {kind!r} is not allowed in a {block['type']} block "
            f"(allowed: {sorted(allowed) or 'none'})",
        )
        if kind == "text_delta":
            block["text"] += self.string(delta, "text")
        elif kind == "thinking_delta":
            self.need(not self.signed, f"thinking_delta after block {index}'s signature_delta")
            block["thinking"] += self.string(delta, "thinking")
        elif kind == "signature_delta":
            self.need(not self.signed, f"a second signature_delta for block {index}")
            signature = self.string(delta, "signature")
            self.need(signature, "signature_delta carries an empty signature")
            block["signature"] = signature
            self.signed = True
        else:  # input_json_delta
            self.json_buf += self.string(delta, "partial_json")

    def string(self, delta: dict[str, Any], key: str) -> str:
        value = delta.get(key)
        self.need(isinstance(value, str), f"{delta.get('type')}.{key} must be a string: {delta!r}")
        return value  # type: ignore[no-any-return]

    def on_content_block_stop(self, data: dict[str, Any]) -> None:
        self.need_message()
        index = self.index_of(data)
        self.need(self.open is not None, f"content_block_stop {index}, but no block is open")
        self.need(index == self.open, f"content_block_stop {index}, but block {self.open} is open")
        block = self.blocks[index]
        if block["type"] == "thinking":
            self.need(self.signed, f"thinking block {index} stopped without a signature_delta")
        elif block["type"] == "tool_use":
            block["input"] = self.tool_input(index)
        self.open = None

    def tool_input(self, index: int) -> dict[str, Any]:
        if not self.json_buf.strip():
            return {}
        try:
            value = strict_json(self.json_buf)
        except ValueError as exc:
            self.fail(
                f"tool_use block {index}: the concatenated partial_json is not JSON ({exc}): "
                f"{short(self.json_buf)}"
            )
        self.need(
            isinstance(value, dict),
            f"tool_use block {index}: input is a JSON {type(value).__name__}, not an object",
        )
        return value  # type: ignore[no-any-return]

    def on_message_delta(self, data: dict[str, Any]) -> None:
        self.need(self.message is not None, "comes before message_start")
        self.need(self.delta_at < 0, f"duplicate message_delta (first at #{self.delta_at})")
        self.need(
            self.open is None,
            f"message_delta while block {self.open} is still open (no content_block_stop)",
        )
        delta = data.get("delta")
        self.need(isinstance(delta, dict), f"delta must be an object, got {delta!r}")
        assert isinstance(delta, dict)
        reason = delta.get("stop_reason")
        self.need(
            isinstance(reason, str) and reason in STOP_REASONS,
            f"stop_reason {reason!r} is not one of {sorted(STOP_REASONS)}",
        )
        if reason == "tool_use":
            self.need(
                any(block["type"] == "tool_use" for block in self.blocks),
                "stop_reason 'tool_use' but the message has no tool_use block",
            )
        sequence = delta.get("stop_sequence")
        if reason == "stop_sequence":
            self.need(
                isinstance(sequence, str),
                f"stop_reason 'stop_sequence' needs a string delta.stop_sequence, got {sequence!r}",
            )
        else:
            self.need(
                sequence is None,
                f"delta.stop_sequence must be null when stop_reason is {reason!r}, "
                f"got {sequence!r}",
            )
        usage = data.get("usage")
        self.need(isinstance(usage, dict), f"usage must be an object, got {usage!r}")
        assert isinstance(usage, dict)
        output_tokens = usage.get("output_tokens")
        self.need(
            is_count(output_tokens),
            f"usage.output_tokens must be a non-negative integer, got {output_tokens!r}",
        )
        for key in _USAGE_COUNTS:
            value = usage.get(key)
            self.need(
                value is None or is_count(value),
                f"usage.{key} must be a non-negative integer or null, got {value!r}",
            )
        assert self.message is not None
        self.message["stop_reason"] = reason
        self.message["stop_sequence"] = sequence
        # message_delta's usage is cumulative: its non-null fields replace message_start's.
        self.message["usage"].update({k: v for k, v in usage.items() if v is not None})
        self.delta_at = self.i

    def on_message_stop(self, data: dict[str, Any]) -> None:
        self.need(self.message is not None, "comes before message_start")
        self.need(self.delta_at >= 0, "message_stop without a message_delta before it")
        self.end = ("message_stop", self.i)

    def on_error(self, data: dict[str, Any]) -> None:
        error = data.get("error")
        self.need(isinstance(error, dict), f"error must be an object, got {error!r}")
        assert isinstance(error, dict)
        self.need(
            isinstance(error.get("type"), str) and error["type"],
            f"error.type must be a non-empty string, got {error.get('type')!r}",
        )
        self.need(
            isinstance(error.get("message"), str),
            f"error.message must be a string, got {error.get('message')!r}",
        )
        self.error = copy.deepcopy(error)
        self.end = ("error", self.i)

    # The result ----------------------------------------------------------------------------

    def finish(self, count: int) -> dict[str, Any]:
        if self.end is None:
            raise AssertionError(
                f"the stream ended after event #{count - 1} ({self.name}) "
                "without message_stop or error"
            )
        if self.error is None:
            assert self.message is not None
            return self.message
        # An error ended the stream: hand back what had arrived, as it stood.
        if self.open is not None and self.blocks[self.open]["type"] == "tool_use":
            try:
                parsed = strict_json(self.json_buf) if self.json_buf.strip() else {}
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                self.blocks[self.open]["input"] = parsed
        message = self.message
        if message is None:
            message = {
                "id": None,
                "type": "message",
                "role": "assistant",
                "model": None,
                "content": self.blocks,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": None,
            }
        message["error"] = self.error
        return message


def validate(events: Sequence[Event], *, request_had_input: bool = True) -> dict[str, Any]:
    """Check a stream's events against the documented grammar; return the assembled message.

    When an ``error`` event ended the stream, the partial message comes back with an extra
    ``"error"`` key holding the error object (and ``id``/``model``/``usage`` None if the error
    came before ``message_start``).
    """
    require(
        isinstance(events, Sequence) and not isinstance(events, (str, bytes)),
        f"expected a sequence of (name, data) events, got {type(events).__name__}",
    )
    require(events, "empty stream: expected message_start ... message_stop")
    checker = _Checker(request_had_input)
    for i, event in enumerate(events):
        checker.feed(i, event)
    return checker.finish(len(events))
