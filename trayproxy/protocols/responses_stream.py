"""A Chat Completions stream as a Responses API stream, event by event.

The order Codex and the SDKs read: ``response.created``, ``response.in_progress``; per output
item one ``response.output_item.added``, its parts and deltas, and one
``response.output_item.done`` carrying the whole item (reasoning as a summary, text as an
``output_text`` part, each tool call as a ``function_call`` whose arguments stream as deltas,
or a ``custom_tool_call`` for a freeform tool, complete in its ``done``); then exactly one
terminal event: ``response.completed`` with usage, ``response.incomplete`` when the output
ran out of tokens, or ``response.failed`` (``error``) from the relay.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from trayproxy.core.estimate import text_tokens
from trayproxy.core.jsonbody import dumps
from trayproxy.protocols.chat_events import ChatEvents
from trayproxy.protocols.responses_request import CUSTOM_INPUT


def new_id(prefix: str) -> str:
    return f"{prefix}_tp{secrets.token_hex(12)}"


def usage(chat_usage: Any, estimated_input: int, estimated_output: int) -> dict[str, Any]:
    """The Responses usage for a Chat ``usage`` (estimated where the provider gave none)."""
    u = chat_usage if isinstance(chat_usage, dict) else {}
    prompt = _int(u.get("prompt_tokens"), estimated_input)
    output = _int(u.get("completion_tokens"), estimated_output)
    details = (
        u.get("prompt_tokens_details") if isinstance(u.get("prompt_tokens_details"), dict) else {}
    )
    cached = _int(details.get("cached_tokens"), _int(u.get("prompt_cache_hit_tokens"), 0))
    out_details = u.get("completion_tokens_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": _int(out_details.get("reasoning_tokens"), 0)},
        "total_tokens": prompt + output,
    }


def _int(value: Any, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )


def custom_input(arguments: str) -> str:
    """A freeform tool's input from the one-argument function it was offered as."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return value[CUSTOM_INPUT]
    return arguments


class ResponsesStream(ChatEvents):
    """Feeds on a provider's Chat stream; ``start`` first, ``feed`` per chunk, ``finish``."""

    def __init__(
        self, *, model: str, input_tokens: int, custom_tools: frozenset[str] = frozenset()
    ) -> None:
        super().__init__()
        self.model = model
        self.input_tokens = input_tokens
        self.custom_tools = custom_tools
        self.id = new_id("resp")
        self.created = int(time.time())
        self._seq = 0
        self._output: list[dict[str, Any]] = []  # finished items
        self._open: dict[str, Any] | None = None  # the item being written
        self._text: list[str] = []  # its text (reasoning, message text or arguments)
        self._tool: Any = None  # the provider's index of the open tool call
        self._written: list[str] = []
        self._finish: Any = None

    # ------------------------------------------------------------ framing

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        self._seq += 1
        body = {"type": kind, "sequence_number": self._seq, **data}
        return b"event: " + kind.encode() + b"\ndata: " + dumps(body) + b"\n\n"

    def response(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.model,
            "output": list(self._output),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "usage": None,
            **extra,
        }

    def start(self) -> bytes:
        opening = self.response("in_progress")
        return self._event("response.created", {"response": opening}) + self._event(
            "response.in_progress", {"response": opening}
        )

    def keepalive(self) -> bytes:
        """The API's own heartbeat (``{"type": "keepalive"}``, what OpenAI sends while a model
        thinks): an event, so that Codex's idle timer, which ignores SSE comments, sees it."""
        return self._event("keepalive", {})

    def finish(self) -> bytes:
        """The last events, when the provider finished (else nothing: the relay sends
        ``response.failed`` for a truncated answer)."""
        out = self.flush()
        if self.failed or self.ended or not (self.done or self._finish is not None):
            return out
        self.ended = True
        out += self._close()
        written = text_tokens("".join(self._written)) if self._usage is None else 0
        used = usage(self._usage, self.input_tokens, written)
        if self._finish == "length":
            details = {"reason": "max_output_tokens"}
            final = self.response("incomplete", usage=used, incomplete_details=details)
            return out + self._event("response.incomplete", {"response": final})
        final = self.response("completed", usage=used)
        return out + self._event("response.completed", {"response": final})

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        """``response.failed``: the stream's last event when it fails after it began."""
        if self.ended or self.failed:  # exactly one terminal event
            return b""
        self.failed = True
        error = {"code": code or error_code(status), "message": message}
        return self._close() + self._event(
            "response.failed", {"response": self.response("failed", error=error)}
        )

    # ------------------------------------------------------------ the provider's events

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        out = b""
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._reasoning(reasoning)
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._message(text)
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else []):
                if isinstance(call, dict):
                    out += self._call(position, call)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return out

    # ------------------------------------------------------------ items

    def _add(self, item: dict[str, Any]) -> bytes:
        self._open, self._text = item, []
        return self._event(
            "response.output_item.added", {"output_index": len(self._output), "item": item}
        )

    def _reasoning(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open["type"] != "reasoning":
            out += self._close()
            out += self._add({"type": "reasoning", "id": new_id("rs"), "summary": []})
            out += self._event(
                "response.reasoning_summary_part.added",
                self._where(summary_index=0, part={"type": "summary_text", "text": ""}),
            )
        self._text.append(text)
        self._written.append(text)
        return out + self._event(
            "response.reasoning_summary_text.delta", self._where(summary_index=0, delta=text)
        )

    def _message(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open["type"] != "message":
            out += self._close()
            item = {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            out += self._add(item)
            part = {"type": "output_text", "text": "", "annotations": []}
            out += self._event(
                "response.content_part.added", self._where(content_index=0, part=part)
            )
        self._text.append(text)
        self._written.append(text)
        return out + self._event(
            "response.output_text.delta", self._where(content_index=0, delta=text, logprobs=[])
        )

    def _call(self, position: int, call: dict[str, Any]) -> bytes:
        index = call.get("index", position)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        call_id = call.get("id")
        out = b""
        opened = self._open is not None and self._open["type"] in (
            "function_call",
            "custom_tool_call",
        )
        if not opened or self._tool != index or call_id not in (None, self._open.get("call_id")):
            out += self._close()
            name = function.get("name") or ""
            item: dict[str, Any] = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call_id if isinstance(call_id, str) and call_id else new_id("call"),
                "name": name,
                "arguments": "",
                "status": "in_progress",
            }
            if name in self.custom_tools:  # complete in its done event: no argument deltas
                item = {k: v for k, v in item.items() if k != "arguments"}
                item |= {"type": "custom_tool_call", "input": ""}
                self._open, self._text = item, []
            else:
                out += self._add(item)
            self._tool = index
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        if isinstance(arguments, str) and arguments:
            self._text.append(arguments)
            self._written.append(arguments)
            if self._open is not None and self._open["type"] == "function_call":
                out += self._event(
                    "response.function_call_arguments.delta", self._where(delta=arguments)
                )
        return out

    def _where(self, **fields: Any) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self._output), **fields}

    def _close(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        text = "".join(self._text)
        out = b""
        kind = item["type"]
        if kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            out += self._event(
                "response.reasoning_summary_text.done", self._where(summary_index=0, text=text)
            )
            out += self._event(
                "response.reasoning_summary_part.done", self._where(summary_index=0, part=part)
            )
            item = {**item, "summary": [part]}
        elif kind == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            out += self._event(
                "response.output_text.done", self._where(content_index=0, text=text, logprobs=[])
            )
            out += self._event(
                "response.content_part.done", self._where(content_index=0, part=part)
            )
            item = {**item, "status": "completed", "content": [part]}
        elif kind == "function_call":
            out += self._event("response.function_call_arguments.done", self._where(arguments=text))
            item = {**item, "arguments": text, "status": "completed"}
        else:  # a custom tool call: added and done at once, with its whole input
            item = {**item, "input": custom_input(text), "status": "completed"}
            out += self._event(
                "response.output_item.added",
                {
                    "output_index": len(self._output),
                    "item": {**item, "input": "", "status": "in_progress"},
                },
            )
        out += self._event(
            "response.output_item.done", {"output_index": len(self._output), "item": item}
        )
        self._output.append(item)
        self._open, self._text, self._tool = None, [], None
        return out


# What Codex reads in a failure's code: it retries some and words others.
_CODES = {429: "rate_limit_exceeded", 402: "insufficient_quota", 400: "invalid_request"}


def error_code(status: int) -> str:
    return _CODES.get(status) or ("server_error" if status >= 500 else "invalid_request")
