"""Reasoning to give back: some providers (Kimi K2 thinking, DeepSeek on NIM) want an
assistant tool-call turn sent again with the reasoning that came with it, which clients drop.
It is remembered here, per tool call, in a bounded memory.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any


def _canonical(arguments: str) -> str:
    """Arguments as JSON written one way: a client that re-encodes them (an Anthropic client
    sends them back as an object) still finds the call."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


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
    text = "\x00".join((call["id"], name, _canonical(arguments)))
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
