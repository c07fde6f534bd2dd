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
from typing import Any

from trayproxy.core.jsonbody import dumps
from trayproxy.core.jsonbody import loads as json_loads  # exact integers: events are re-sent
from trayproxy.providers.chat import CHAT, COMPLETIONS, choices_of
from trayproxy.providers.profiles import RESTORE_OFF, Profile
from trayproxy.providers.reasoning import ReasoningMemory, call_key

_ALNUM = string.ascii_letters + string.digits


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
        for choice in choices_of(obj):
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            changed |= self.rename_reasoning(message)
            changed |= self.map_ids_back(message)
            text = message.get("reasoning_content")
            calls = message.get("tool_calls")
            keys = [k for k in map(call_key, calls) if k] if isinstance(calls, list) else []
            if self.memory is not None and keys and isinstance(text, str) and text:
                self.remembered += self.memory.put(keys, text)
        return dumps(obj) if changed else data

    def rename_reasoning(self, part: dict[str, Any]) -> bool:
        value = part.get("reasoning")
        if not isinstance(value, str) or not value:
            return False  # absent, or a null some providers send in every chunk
        del part["reasoning"]
        if not part.get("reasoning_content"):
            part["reasoning_content"] = value
            self.renamed += 1
        return True

    def map_ids_back(self, part: dict[str, Any]) -> bool:
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
