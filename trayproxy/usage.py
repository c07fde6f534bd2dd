"""Token usage from an answer: a JSON body, or the events of a stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trayproxy.sse import SSEParser


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _int(value: Any) -> int | None:
    """A token count, or None for anything that is not a plausible one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return None


def usage_from_obj(obj: Any) -> Usage | None:
    """Usage from a decoded answer or stream event (chat, completions, embeddings, responses)."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        inner = obj.get("response")  # Responses API stream: response.completed
        usage = inner.get("usage") if isinstance(inner, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    if prompt is None:
        prompt = _int(usage.get("input_tokens"))
    completion = _int(usage.get("completion_tokens"))
    if completion is None:
        completion = _int(usage.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    return Usage(prompt, completion)


def usage_from_body(body: bytes) -> Usage | None:
    if b'"usage"' not in body:
        return None
    try:
        return usage_from_obj(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None


class StreamWatcher:
    """Reads usage and in-stream errors from SSE bytes as they pass by."""

    def __init__(self) -> None:
        self._parser = SSEParser()
        self.usage: Usage | None = None
        self.error: str | None = None
        self.done = False

    @property
    def events(self) -> int:
        return self._parser.events

    def feed(self, chunk: bytes) -> None:
        for data in self._parser.feed(chunk):
            if data == b"[DONE]":
                self.done = True
                continue
            if b'"usage"' not in data and b'"error"' not in data:
                continue
            try:
                obj = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                continue
            found = usage_from_obj(obj)
            if found is not None:
                self.usage = found
            err = obj.get("error") if isinstance(obj, dict) else None
            if err:
                msg = err.get("message") if isinstance(err, dict) else err
                self.error = str(msg)[:500]
