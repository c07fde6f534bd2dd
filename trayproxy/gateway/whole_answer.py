"""A provider's answer beyond relaying it: a whole (non-streamed) answer read within bounds,
and the token counts a provider did not report estimated (for streams too)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from trayproxy.core.estimate import request_tokens
from trayproxy.gateway.stream import within
from trayproxy.records.logbook import RecordDraft


class AnswerTooLarge(Exception):
    pass


async def read_whole(resp: aiohttp.ClientResponse, idle: float, limit: int) -> bytes:
    """The whole (decompressed) answer; :class:`AnswerTooLarge` past ``limit`` bytes, having
    held no more than ``limit`` and one read's worth."""
    content = resp.content
    if content.is_eof():  # it came with the headers (most JSON answers): no timer needed
        data = content.read_nowait()
        if len(data) > limit:
            raise AnswerTooLarge
        return data
    parts: list[bytes] = []
    size = 0
    read = content.readany
    while chunk := await within(read(), idle):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def estimate_missing(
    draft: RecordDraft, sent: dict[str, Any], written: Callable[[], int] | None
) -> None:
    """The token counts the provider did not report, estimated from the request ``sent`` and
    ``written`` (the answer's; None for an endpoint whose answer is not text), in a worker
    thread (a long prompt takes milliseconds), and marked as estimated."""
    if draft.prompt_tokens is not None and draft.completion_tokens is not None:
        return

    def estimate() -> tuple[int, int]:
        prompt = draft.prompt_tokens
        if prompt is None:
            prompt = request_tokens(sent)
        done = draft.completion_tokens
        if done is None:
            try:
                done = written() if written is not None else 0
            except (ValueError, UnicodeDecodeError):
                done = 0
        return prompt, done

    draft.prompt_tokens, draft.completion_tokens = await asyncio.to_thread(estimate)
    draft.tokens_estimated = True
