"""A request in the provider's dialect, and its answer back in the one clients read.

:func:`prepare` applies a provider's :class:`~trayproxy.providers.profiles.Profile` to a
request body (renamed and dropped parameters, clamped ``max_tokens``, usage asked for, Mistral-sized
tool-call ids, remembered reasoning put back) without touching the client's body, and says
what it changed. The :class:`Exchange` it returns then rewrites the answer: reasoning sent as
``reasoning`` becomes ``reasoning_content`` in chunks of its own (Continue reads one field per
chunk), the usage chunk the client did not ask for is removed, shortened tool-call ids are
mapped back, and the reasoning of tool-call turns is remembered for the next request.

Events that need none of this pass through as the provider's own bytes.
"""

from __future__ import annotations

import hashlib
import string
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from trayproxy.core.jsonbody import dumps
from trayproxy.core.jsonbody import loads as json_loads  # exact integers: events are re-sent
from trayproxy.core.sse import data_of, event_bounds, find_all, last_boundary
from trayproxy.providers.profiles import RESTORE_OFF, Profile

CHAT = "chat/completions"
COMPLETIONS = "completions"

_ALNUM = string.ascii_letters + string.digits
_MAX_HELD = 8 * 1024 * 1024  # an event larger than this passes through unchanged


def short_id(value: str) -> str:
    """A 9-character id of letters and digits for ``value``: the same one every time."""
    if len(value) == 9 and value.isascii() and value.isalnum():
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, 62)
        out.append(_ALNUM[r])
    return "".join(out)


def call_key(call: Any) -> str | None:
    """What identifies a tool call in the memory: its id, function name and arguments.

    Ids alone repeat: Kimi numbers them per turn (``functions.read_file:0`` in every
    conversation), so the id finds the turn only together with what was called."""
    if not isinstance(call, dict) or not isinstance(call.get("id"), str):
        return None
    function = call.get("function")
    name = arguments = ""
    if isinstance(function, dict):
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        arguments = function.get("arguments") if isinstance(function.get("arguments"), str) else ""
    text = "\x00".join((call["id"], name, arguments))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ReasoningMemory:
    """The reasoning of recent assistant tool-call turns, keyed by :func:`call_key`.

    Bounded by entries and characters; the oldest go first. Lives in memory only.
    """

    def __init__(self, max_entries: int = 2048, max_chars: int = 8_000_000) -> None:
        self._items: OrderedDict[str, str] = OrderedDict()
        self._chars = 0
        self.max_entries = max_entries
        self.max_chars = max_chars

    def __len__(self) -> int:
        return len(self._items)

    def put(self, ids: Iterable[str], text: str) -> int:
        if len(text) > self.max_chars:
            return 0
        count = 0
        for key in ids:
            old = self._items.pop(key, None)
            if old is not None:
                self._chars -= len(old)
            self._items[key] = text
            self._chars += len(text)
            count += 1
        while self._items and (len(self._items) > self.max_entries or self._chars > self.max_chars):
            _, dropped = self._items.popitem(last=False)
            self._chars -= len(dropped)
        return count

    def get(self, key: str) -> str | None:
        text = self._items.get(key)
        if text is not None:
            self._items.move_to_end(key)
        return text


class Exchange:
    """One attempt's rewrites: made to the request, then to be made to its answer."""

    def __init__(self, profile: Profile, endpoint: str, memory: ReasoningMemory | None) -> None:
        self.profile = profile
        self.endpoint = endpoint
        self.memory = memory if self.profile.restore_reasoning != RESTORE_OFF else None
        self.notes: list[str] = []
        self.strip_usage = False
        self.id_back: dict[str, str] = {}  # provider's id -> the client's
        # counted while the answer passes
        self.renamed = 0
        self.split = 0
        self.usage_removed = 0
        self.ids_mapped = 0
        self.remembered = 0

    # ------------------------------------------------------------ the answer

    @property
    def rewrites_stream(self) -> bool:
        return self.endpoint == CHAT or self.strip_usage

    def stream_rewriter(self) -> StreamRewriter | None:
        return StreamRewriter(self) if self.rewrites_stream else None

    def answer_notes(self) -> list[str]:
        notes = []
        if self.renamed:
            notes.append(f"reasoning → reasoning_content ({self.renamed} chunks)")
        if self.split:
            notes.append(f"reasoning sent in chunks of its own ({self.split})")
        if self.usage_removed:
            notes.append("usage chunk removed (the client did not ask for it)")
        if self.ids_mapped:
            notes.append(f"tool-call ids mapped back ({self.ids_mapped})")
        if self.remembered:
            s = "s" if self.remembered != 1 else ""
            notes.append(f"reasoning remembered for {self.remembered} tool call{s}")
        return notes

    def rewrite_body(self, data: bytes) -> bytes:
        """A non-streamed chat answer, rewritten when it needs it."""
        if self.endpoint != CHAT or not (
            b'"reasoning"' in data
            or (b'"tool_calls"' in data and (self.id_back or self.memory is not None))
        ):
            return data
        try:
            obj = json_loads(data)
        except (ValueError, UnicodeDecodeError):
            return data
        changed = False
        for choice in _choices(obj):
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            changed |= self._rename_reasoning(message)
            changed |= self._map_ids_back(message)
            text = message.get("reasoning_content")
            calls = message.get("tool_calls")
            keys = [k for k in map(call_key, calls) if k] if isinstance(calls, list) else []
            if self.memory is not None and keys and isinstance(text, str) and text:
                self.remembered += self.memory.put(keys, text)
        return dumps(obj) if changed else data

    def _rename_reasoning(self, part: dict[str, Any]) -> bool:
        value = part.get("reasoning")
        if not isinstance(value, str) or not value:
            return False  # absent, or a null some providers send in every chunk
        del part["reasoning"]
        if not part.get("reasoning_content"):
            part["reasoning_content"] = value
            self.renamed += 1
        return True

    def _map_ids_back(self, part: dict[str, Any]) -> bool:
        """Put the client's tool-call ids back into ``part`` (in place); whether any was."""
        calls = part.get("tool_calls")
        mapped = 0
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    original = self.id_back.get(call["id"])
                    if original is not None:
                        call["id"] = original
                        mapped += 1
        self.ids_mapped += mapped
        return mapped > 0


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
        for position, choice in enumerate(_choices(obj)):
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            changed |= ex._rename_reasoning(delta)
            index = choice.get("index", position)
            index = index if isinstance(index, int) else position
            changed |= ex._map_ids_back(delta)
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


def _choices(obj: Any) -> list[dict[str, Any]]:
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict)]


# ---------------------------------------------------------------- the request


def prepare(
    profile: Profile,
    endpoint: str,
    body: dict[str, Any],
    memory: ReasoningMemory | None,
    *,
    max_output_tokens: int | None = None,
) -> tuple[dict[str, Any], Exchange]:
    """The body to send to a provider with ``profile`` (a new dict; ``body`` is untouched),
    with ``max_tokens`` clamped to the mapping's ``max_output_tokens``, and its exchange."""
    ex = Exchange(profile, endpoint, memory)
    if endpoint not in (CHAT, COMPLETIONS):
        return body, ex
    profile = ex.profile
    out = dict(body)
    notes = ex.notes
    for src, dst in profile.rename_params:
        if src in out:
            value = out.pop(src)
            if dst in out:
                notes.append(f"{src} removed ({dst} is set)")
            else:
                out[dst] = value
                notes.append(f"{src} → {dst}")
    asks_usage = profile.include_usage and "stream_options" not in profile.drop_params
    if asks_usage and out.get("stream") is True:
        options = out.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            base = options if isinstance(options, dict) else {}
            out["stream_options"] = {**base, "include_usage": True}
            ex.strip_usage = True
            notes.append("usage requested upstream (stream_options.include_usage)")
    dropped = [name for name in profile.drop_params if name in out]
    for name in dropped:
        del out[name]
    if dropped:
        notes.append("removed: " + ", ".join(dropped))
    cap = max_output_tokens
    if cap:
        for key in ("max_tokens", "max_completion_tokens"):
            value = out.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > cap:
                out[key] = cap
                notes.append(f"{key} {value} → {cap} (the model's max_output_tokens)")
    messages = out.get("messages")
    if endpoint == CHAT and isinstance(messages, list):
        out["messages"] = _messages(ex, messages)
    return out, ex


def _messages(ex: Exchange, messages: list[Any]) -> list[Any]:
    profile = ex.profile
    restore = profile.restore_reasoning
    other = "reasoning" if restore == "reasoning_content" else "reasoning_content"
    restored = placeholders = moved = shortened = 0
    removed: dict[str, int] = {}
    out = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        msg = message
        calls = msg.get("tool_calls")
        if (
            restore != RESTORE_OFF
            and msg.get("role") == "assistant"
            and isinstance(calls, list)
            and calls
            and msg.get(restore) is None
        ):
            msg = dict(msg)
            if isinstance(msg.get(other), str):
                msg[restore] = msg.pop(other)
                moved += 1
            else:
                text = _remembered(ex.memory, calls)
                if text is None:
                    msg[restore] = ""
                    placeholders += 1
                else:
                    msg[restore] = text
                    restored += 1
        for name in profile.drop_message_fields:
            if name in msg:
                msg = dict(msg) if msg is message else msg
                del msg[name]
                removed[name] = removed.get(name, 0) + 1
        if profile.short_tool_call_ids:
            msg, count = _shorten(ex, msg, message)
            shortened += count
        out.append(msg)
    notes = ex.notes
    if restored:
        notes.append(f"{restore} restored for {_turns(restored)}")
    if moved:
        notes.append(f"{other} → {restore} for {_turns(moved)}")
    if placeholders:
        notes.append(f"{restore} sent empty for {_turns(placeholders)} (not remembered)")
    if removed:
        notes.append(
            "removed from messages: " + ", ".join(f"{k} ({v})" for k, v in removed.items())
        )
    if shortened:
        notes.append(f"tool-call ids shortened to 9 characters ({shortened})")
    return out


def _turns(n: int) -> str:
    return f"{n} turn" + ("s" if n != 1 else "")


def _remembered(memory: ReasoningMemory | None, calls: list[Any]) -> str | None:
    if memory is None:
        return None
    for call in calls:
        key = call_key(call)
        if key is not None:
            text = memory.get(key)
            if text is not None:
                return text
    return None


def _shorten(
    ex: Exchange, msg: dict[str, Any], original: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    count = 0
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        new_calls = []
        for call in calls:
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                short = short_id(call["id"])
                if short != call["id"]:
                    ex.id_back[short] = call["id"]
                    call = {**call, "id": short}
                    count += 1
            new_calls.append(call)
        if count:
            msg = dict(msg) if msg is original else msg
            msg["tool_calls"] = new_calls
    ref = msg.get("tool_call_id")
    if isinstance(ref, str) and short_id(ref) != ref:
        msg = dict(msg) if msg is original else msg
        msg["tool_call_id"] = short_id(ref)
        ex.id_back[msg["tool_call_id"]] = ref
        count += 1
    return msg, count
