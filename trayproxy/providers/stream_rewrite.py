"""A streamed answer rewritten event by event for the client: reasoning renamed and sent in
chunks of its own, the usage chunk the client did not ask for removed, tool-call ids mapped
back, and the tool calls assembled so that their reasoning can be remembered. Events that
need none of this pass through as the provider's own bytes.
"""

from __future__ import annotations

from typing import Any

from trayproxy.core.jsonbody import dumps
from trayproxy.core.jsonbody import loads as json_loads  # exact integers: events are re-sent
from trayproxy.core.sse import data_of, event_bounds, find_all, last_boundary
from trayproxy.providers.chat import CHAT, choices_of
from trayproxy.providers.dialect import Exchange
from trayproxy.providers.reasoning import call_key

_MAX_HELD = 8 * 1024 * 1024  # an event larger than this passes through unchanged


class StreamRewriter:
    """Rewrites SSE events of one streamed answer. ``feed`` returns what to send now."""

    def __init__(self, exchange: Exchange) -> None:
        self.ex = exchange
        self._tail = b""
        triggers = [b'"reasoning']
        if exchange.strip_usage:
            triggers.append(b'"usage"')
        if exchange.id_back or exchange.memory is not None:
            triggers.append(b'"tool_calls"')
        self._triggers = tuple(triggers)
        self._reasoning: dict[int, list[str]] = {}
        # (choice index, tool-call index) -> the call as the client assembles it
        self._calls: dict[tuple[int, int], dict[str, Any]] = {}

    def _wanted(self, data: bytes) -> bool:
        return any(t in data for t in self._triggers)

    def feed(self, chunk: bytes) -> bytes:
        if not self._tail and chunk.endswith(b"\n\n") and not self._wanted(chunk):
            return chunk  # whole events with nothing to change: the provider's own bytes
        data = self._tail + chunk
        end = last_boundary(data)
        complete, self._tail = data[:end], data[end:]
        out: list[bytes] = []
        done = 0
        for at in find_all(complete, self._triggers):
            if at < done:
                continue  # inside an event already rewritten
            start, stop = event_bounds(complete, at)
            out.append(complete[done:start])
            out.append(self._event(complete[start:stop]))
            done = stop
        out.append(complete[done:])
        if len(self._tail) > _MAX_HELD:
            out.append(self._tail)
            self._tail = b""
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the stream: whatever was held back, and the reasoning to remember."""
        tail, self._tail = self._tail, b""
        memory = self.ex.memory
        if memory is not None:
            keys: dict[int, list[str]] = {}
            for (index, _), call in sorted(self._calls.items()):
                key = call_key(call)
                if key:
                    keys.setdefault(index, []).append(key)
            for index, found in keys.items():
                text = "".join(self._reasoning.get(index, ()))
                if text:
                    self.ex.remembered += memory.put(found, text)
        return tail

    def _event(self, raw: bytes) -> bytes:
        payload, other_fields = data_of(raw)
        if other_fields or not payload or payload == b"[DONE]":
            return raw  # "event:" or "id:" fields: not an OpenAI chunk, leave it
        try:
            obj = json_loads(payload)
        except (ValueError, UnicodeDecodeError):
            return raw
        if not isinstance(obj, dict):
            return raw
        rewritten = self._chunk(obj)
        if rewritten is None:
            return raw
        return b"".join(b"data: " + dumps(o) + b"\n\n" for o in rewritten)

    def _assemble(self, index: int, fragments: Any) -> None:
        """Tool-call fragments joined the way clients join them: id, name, arguments."""
        if not isinstance(fragments, list):
            return
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                continue
            slot = fragment.get("index", position)
            call = self._calls.setdefault(
                (index, slot if isinstance(slot, int) else position),
                {"id": None, "function": {"name": "", "arguments": ""}},
            )
            if isinstance(fragment.get("id"), str):
                call["id"] = fragment["id"]
            function = fragment.get("function")
            if isinstance(function, dict):
                for part in ("name", "arguments"):
                    if isinstance(function.get(part), str):
                        call["function"][part] += function[part]

    def _chunk(self, obj: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The chunks to send instead of ``obj``, or None to send it unchanged."""
        ex = self.ex
        choices = obj.get("choices")
        if ex.strip_usage and "usage" in obj and not choices:
            ex.usage_removed += 1
            return []
        if ex.endpoint != CHAT:
            return None
        changed = False
        for position, choice in enumerate(choices_of(obj)):
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            changed |= ex.rename_reasoning(delta)
            index = choice.get("index", position)
            index = index if isinstance(index, int) else position
            changed |= ex.map_ids_back(delta)
            text = delta.get("reasoning_content")
            if ex.memory is not None:
                if isinstance(text, str) and text:
                    self._reasoning.setdefault(index, []).append(text)
                self._assemble(index, delta.get("tool_calls"))
            if text and delta.get("content") == "":
                del delta["content"]  # an empty content would hide the reasoning
                changed = True
        if isinstance(choices, list) and len(choices) == 1:
            pair = _split(obj, choices[0])
            if pair is not None:
                ex.split += 1
                return pair
        return [obj] if changed else None


def _split(obj: dict[str, Any], choice: Any) -> list[dict[str, Any]] | None:
    """Reasoning and content (or tool calls) of one delta as two chunks, reasoning first."""
    if not isinstance(choice, dict):
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict) or not delta.get("reasoning_content"):
        return None
    if not (delta.get("content") or delta.get("tool_calls")):
        return None
    head = {k: v for k, v in delta.items() if k in ("role", "reasoning_content")}
    rest = {k: v for k, v in delta.items() if k != "reasoning_content"}
    first = {k: v for k, v in obj.items() if k != "usage"}
    first["choices"] = [{**choice, "delta": head, "finish_reason": None}]
    second = dict(obj)
    second["choices"] = [{**choice, "delta": rest}]
    return [first, second]


# ---------------------------------------------------------------- the request


def for_exchange(exchange: Exchange) -> StreamRewriter | None:
    """The rewriter a stream of this exchange needs, or None: its bytes pass untouched."""
    return StreamRewriter(exchange) if exchange.rewrites_stream else None
