"""Token usage from an answer: a JSON body, or the events of a stream."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trayproxy.core.estimate import text_tokens, written_text
from trayproxy.core.jsonbody import loads_answer
from trayproxy.core.sse import MAX_EVENT_BYTES, data_of, event_bounds, find_all, last_boundary


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None  # all of the prompt, the cached part included
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # of the prompt, read from the provider's cache
    reasoning_tokens: int | None = None  # of the output, as the provider reports them

    def merged(self, old: Usage) -> Usage:
        """This event's counts, and ``old``'s where this one has none (Anthropic's
        ``message_delta`` may carry the output only)."""
        return Usage(
            *(
                new if new is not None else before
                for new, before in zip(self._counts(), old._counts(), strict=True)
            )
        )

    def _counts(self) -> tuple[int | None, ...]:
        return (
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.reasoning_tokens,
        )


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
        total = _int(usage.get("total_tokens"))  # embeddings and rerank: all of it is input
        return None if total is None else Usage(total, 0)
    cached = _detail(usage, ("prompt_tokens_details", "input_tokens_details"), "cached_tokens")
    if cached is None:  # DeepSeek's, Moonshot's names for it
        cached = _int(usage.get("prompt_cache_hit_tokens"))
        if cached is None:
            cached = _int(usage.get("cached_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))  # Anthropic: input_tokens excludes it
    if read is not None or "cache_creation_input_tokens" in usage:
        created = _int(usage.get("cache_creation_input_tokens")) or 0
        if prompt is not None:
            prompt += (read or 0) + created
        cached = read
    reasoning = _detail(
        usage, ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens"
    )
    if reasoning is None:
        reasoning = _int(usage.get("reasoning_tokens"))
    return Usage(prompt, completion, cached, reasoning)


def _detail(usage: dict[str, Any], tables: tuple[str, ...], key: str) -> int | None:
    for name in tables:
        table = usage.get(name)
        if isinstance(table, dict):
            found = _int(table.get(key))
            if found is not None:
                return found
    return None


def usage_from_body(body: bytes) -> Usage | None:
    if b'"usage"' not in body:
        return None
    try:
        return usage_from_obj(loads_answer(body))
    except (ValueError, UnicodeDecodeError):
        return None


_WATCHED = (b'"usage"', b'"error"', b"[DONE]")
_SAMPLE_BYTES = 64 * 1024
# The marks of an answer that ended as it should: a choice's finish_reason set (Chat and
# Completions), or the Responses API's last event. ``[DONE]`` and an error event count too.
_ENDED = re.compile(
    rb'"finish_reason"\s*:\s*"|"stop_reason"\s*:\s*"'
    rb"|response\.(?:completed|incomplete|failed)\b|^data: ?\[DONE\]",
    re.MULTILINE,
)


class StreamWatcher:
    """Reads usage and in-stream errors from SSE bytes as they pass by.

    ``events`` counts data lines that start an event (a change in it means a real event, not a
    keep-alive comment). Only events that mention usage, an error or ``[DONE]`` are parsed.
    """

    def __init__(self) -> None:
        self._tail = b""
        self.events = 0
        self.usage: Usage | None = None
        self.error: str | None = None
        self.done = False
        # the last two runs of whole events: a stream's end is in them (read at the end only,
        # not searched for in every chunk)
        self._last = self._before = b""
        # for an estimate when the provider reports no usage: the size of the whole stream
        # and its first events, whose share of written text is the whole stream's (every
        # event of a stream carries the same envelope around its piece of text)
        self.data_bytes = 0
        self._sample: list[bytes] = []  # kept as parts: joined only for an estimate
        self._sampled = 0

    @property
    def finished(self) -> bool:
        """Whether the stream has shown its end; one that closes without it was cut short."""
        if self.done or self.error is not None:
            return True
        return any(_ENDED.search(part) for part in (self._tail, self._last, self._before))

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk if self._tail else chunk
        end = last_boundary(data)
        tail = data[end:]
        self._tail = tail if len(tail) <= MAX_EVENT_BYTES else b""
        if not end:
            return
        complete = data[:end] if end < len(data) else data
        self.events += complete.count(b"\ndata:") + complete.startswith(b"data:")
        self.data_bytes += end
        if self._sampled < _SAMPLE_BYTES:
            self._sample.append(complete)
            self._sampled += end
        self._before, self._last = self._last, complete
        handled = 0
        for at in find_all(complete, _WATCHED):
            if at < handled:
                continue
            start, handled = event_bounds(complete, at)
            self._event(data_of(complete[start:handled])[0])

    def estimated_output_tokens(self) -> int:
        """About how many tokens the stream carried: the tokens of the text written in its
        first events, scaled from their size to the whole stream's."""
        sample = b"".join(self._sample)  # whole events: it grows by runs of them
        if not sample:
            return 0
        written: list[str] = []
        for line in sample.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                written_text(loads_answer(line[5:].strip()), written)
            except (ValueError, UnicodeDecodeError):
                continue
        tokens = text_tokens("".join(written))
        return round(tokens * max(self.data_bytes, len(sample)) / len(sample))

    def _event(self, data: bytes) -> None:
        if data == b"[DONE]":
            self.done = True
            return
        try:
            obj = loads_answer(data)
        except (ValueError, UnicodeDecodeError):
            return
        found = usage_from_obj(obj)
        if found is None and isinstance(obj, dict) and obj.get("type") == "message_start":
            found = usage_from_obj(obj.get("message"))  # Anthropic: the input, at the start
        if found is not None:
            self.usage = found if self.usage is None else found.merged(self.usage)
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if not err and "error" in (obj.get("type"), obj.get("object")):
            err = obj  # {"type": "error", ...} (Responses), {"object": "error", ...} (Mistral)
        if err:
            msg = err.get("message") if isinstance(err, dict) else err
            self.error = str(msg or err)[:500]
