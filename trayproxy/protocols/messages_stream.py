"""A Chat Completions stream as an Anthropic Messages stream, event by event.

The grammar Anthropic's clients hold a stream to: one ``message_start`` (with usage), then for
each content block one ``content_block_start``, its deltas and one ``content_block_stop``,
with indexes counting up from 0 and one block open at a time; then one ``message_delta``
(stop reason, output usage) and ``message_stop``. Reasoning becomes a ``thinking`` block
closed by a ``signature_delta``; text a ``text`` block; each tool call a ``tool_use`` block
whose arguments arrive as ``input_json_delta`` pieces as the provider streams them. A stream
the provider did not finish gets no ``message_stop``: the relay ends it with ``event: error``.
"""

from __future__ import annotations

import json
from typing import Any

from trayproxy.core.estimate import text_tokens
from trayproxy.core.jsonbody import dumps
from trayproxy.protocols import messages_answer, tool_ids
from trayproxy.protocols.chat_events import ChatEvents
from trayproxy.protocols.messages_errors import error_event


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + dumps({"type": kind, **data}) + b"\n\n"


PING = event("ping", {})


class MessagesStream(ChatEvents):
    """Feeds on a provider's Chat stream; ``start`` first, ``feed`` per chunk, ``finish``."""

    def __init__(self, *, model: str, input_tokens: int, stop_sequences: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_tokens = input_tokens  # an estimate until the provider's usage arrives
        self.stop_sequences = stop_sequences
        self._blocks = 0  # content blocks started
        self._open: str | None = None  # the open block's type
        self._tool: Any = None  # the provider's index of the open tool_use block
        self._id: Any = None  # and its id
        self._thinking: list[str] = []  # the open thinking block's text, for its signature
        self._written: list[str] = []  # everything written, for an estimate of output tokens
        self._has_tool_use = False
        self._finish: Any = None
        self._matched: Any = None

    # ------------------------------------------------------------ the stream's frame

    def start(self) -> bytes:
        message = {
            "id": messages_answer.message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
        }
        return event("message_start", {"message": message}) + PING

    def finish(self) -> bytes:
        """The closing events, when the provider finished its answer (else nothing: the
        relay sends an error for a truncated answer)."""
        out = self.flush()
        if self.failed or self.ended or not (self.done or self._finish is not None):
            return out
        self.ended = True
        out += self._close()
        reason, sequence = messages_answer.stop_reason(
            self._finish, self._matched, self.stop_sequences, self._has_tool_use
        )
        if self._usage is not None:
            usage = messages_answer.usage(self._usage, estimated_input=self.input_tokens)
        else:  # the provider counted nothing: estimated (the record says so too)
            usage = {
                "input_tokens": self.input_tokens,
                "output_tokens": text_tokens("".join(self._written)),
            }
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        out += event("message_delta", {"delta": delta, "usage": usage})
        return out + event("message_stop", {})

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        """``event: error``: the stream's last event when it fails after it began."""
        if self.ended or self.failed:  # one last event: the stream has had its end
            return b""
        self.failed = True
        return self._close() + error_event(status, message)

    # ------------------------------------------------------------ events

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        out = b""
        delta = choice.get("delta")
        if isinstance(delta, dict):
            out = self._delta(delta)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._block("thinking") + self._piece("thinking_delta", "thinking", reasoning)
            self._thinking.append(reasoning)
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._block("text") + self._piece("text_delta", "text", text)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    out += self._tool_call(position, call)
        return out

    def _tool_call(self, position: int, call: dict[str, Any]) -> bytes:
        index = call.get("index", position)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        out = b""
        call_id = call.get("id")
        if self._open != "tool_use" or self._tool != index or call_id not in (None, self._id):
            out += self._close()
            block = {
                "type": "tool_use",
                "id": tool_ids.for_client(call.get("id")),
                "name": function.get("name") or "",
                "input": {},
            }
            out += self._start(block)
            self._tool, self._id = index, call_id
            self._has_tool_use = True
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        if isinstance(arguments, str) and arguments:
            out += self._piece("input_json_delta", "partial_json", arguments)
        return out

    # ------------------------------------------------------------ blocks

    def _block(self, kind: str) -> bytes:
        """Open a block of ``kind`` unless one is open already."""
        if self._open == kind:
            return b""
        block: dict[str, Any] = {"type": kind, kind: ""}
        if kind == "thinking":
            block["signature"] = ""
        return self._close() + self._start(block)

    def _start(self, block: dict[str, Any]) -> bytes:
        self._open = block["type"]
        data = {"index": self._blocks, "content_block": block}
        self._blocks += 1
        return event("content_block_start", data)

    def _piece(self, kind: str, field: str, value: str) -> bytes:
        self._written.append(value)
        data = {"index": self._blocks - 1, "delta": {"type": kind, field: value}}
        return event("content_block_delta", data)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        index = self._blocks - 1
        if self._open == "thinking":
            sign = messages_answer.signature("".join(self._thinking))
            delta = {"type": "signature_delta", "signature": sign}
            out += event("content_block_delta", {"index": index, "delta": delta})
            self._thinking = []
        self._open = self._tool = None
        return out + event("content_block_stop", {"index": index})
