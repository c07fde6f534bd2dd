"""A small, fast HTTP/1.1 load generator for the benchmark (asyncio streams, keep-alive).

Requests are encoded once; answers are read by Content-Length or chunked framing, and
checked (status 200, the expected content, a whole stream ending in ``[DONE]``). Times come
from ``time.perf_counter``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.mock_upstream import words

REQUEST_TIMEOUT = 120.0  # a proxy that stops answering ends the run instead of hanging it


class CheckFailed(AssertionError):
    pass


def chat_request(
    port: int,
    model: str,
    *,
    stream: bool = False,
    content: str = "hi",
    path: str = "/v1",
    key: str = "bench",
) -> bytes:
    body: dict = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path}/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head + data


def messages_request(
    port: int, model: str, *, stream: bool = False, content: str = "hi", key: str = "bench"
) -> bytes:
    """An Anthropic Messages request, as Claude Code sends one (``x-api-key``, a version)."""
    body: dict = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nanthropic-version: 2023-06-01\r\n"
        f"x-api-key: {key}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head + data


def responses_request(port: int, model: str, *, stream: bool = False, key: str = "bench") -> bytes:
    """A Responses API request, as Codex sends one (input items, store false)."""
    body: dict = {
        "model": model,
        "input": [{"type": "message", "role": "user", "content": "hi"}],
        "store": False,
    }
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head + data


# the first text of an answer in any protocol: Chat's content, a Messages text_delta or a
# Responses output_text.delta (a role chunk's "content":"" or message_start is not)
_TEXT = re.compile(rb'"(?:content|text|delta)"\s*:\s*"(?!")')


@dataclass
class Answer:
    status: int
    body: bytes
    first_event: float  # seconds from sending to the first SSE event (0 for JSON)
    total: float
    reads: int = 0  # how many separate reads a stream arrived in
    first_content: float = 0.0  # seconds to the first event with text in it (0 for JSON)


@dataclass
class Conn:
    port: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    sent: int = field(default=0)

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=16 * 1024 * 1024
        )
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def send(self, raw: bytes) -> Answer:
        """One request and its whole answer, within REQUEST_TIMEOUT seconds."""
        if sys.version_info >= (3, 11):  # no extra task per request
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await self._send(raw)
        return await asyncio.wait_for(self._send(raw), REQUEST_TIMEOUT)

    async def _send(self, raw: bytes) -> Answer:
        assert self.reader is not None and self.writer is not None
        start = time.perf_counter()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        chunked = False
        for line in head.lower().split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
            elif line.startswith(b"transfer-encoding:") and b"chunked" in line:
                chunked = True
        first = 0.0
        content = 0.0
        reads = 0
        if not chunked:
            body = await self.reader.readexactly(length or 0)
        else:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                part = (await self.reader.readexactly(size + 2))[:-2]
                reads += 1
                if not first and b"data:" in part:
                    first = time.perf_counter() - start
                if not content and _TEXT.search(part):
                    content = time.perf_counter() - start
                parts.append(part)
            body = b"".join(parts)
        return Answer(status, body, first, time.perf_counter() - start, reads, content)


def check_json(answer: Answer, expected: str) -> None:
    if answer.status != 200:
        raise CheckFailed(f"status {answer.status}: {answer.body[:300]!r}")
    content = json.loads(answer.body)["choices"][0]["message"]["content"]
    if content != expected:
        raise CheckFailed(f"wrong content: {content[:80]!r}")


def check_message(answer: Answer, expected: str) -> None:
    """A whole Anthropic message whose text is ``expected``."""
    if answer.status != 200:
        raise CheckFailed(f"status {answer.status}: {answer.body[:300]!r}")
    message = json.loads(answer.body)
    text = "".join(b.get("text", "") for b in message["content"] if b.get("type") == "text")
    if text != expected:
        raise CheckFailed(f"wrong content: {text[:80]!r}")


def check_messages_stream(answer: Answer, chunks: int) -> None:
    """An Anthropic stream whose text deltas make ``chunks`` words and that ends as it should."""
    if answer.status != 200:
        raise CheckFailed(f"status {answer.status}: {answer.body[:300]!r}")
    text = []
    stopped = False
    for line in answer.body.split(b"\n"):
        if line.startswith(b"data: {"):
            obj = json.loads(line[6:])
            if obj.get("type") == "content_block_delta" and "text" in obj["delta"]:
                text.append(obj["delta"]["text"])
            stopped = stopped or obj.get("type") == "message_stop"
    if not stopped or "".join(text) != "".join(words(chunks)):
        raise CheckFailed(f"incomplete Messages stream ({len(text)} deltas, stop={stopped})")


def check_response(answer: Answer, expected: str) -> None:
    """A whole Responses API response whose output text is ``expected``."""
    if answer.status != 200:
        raise CheckFailed(f"status {answer.status}: {answer.body[:300]!r}")
    response = json.loads(answer.body)
    text = "".join(
        part.get("text", "")
        for item in response["output"]
        if item.get("type") == "message"
        for part in item["content"]
    )
    if text != expected:
        raise CheckFailed(f"wrong content: {text[:80]!r}")


def check_responses_stream(answer: Answer, chunks: int) -> None:
    """A Responses stream whose text deltas make ``chunks`` words, ending completed."""
    if answer.status != 200:
        raise CheckFailed(f"status {answer.status}: {answer.body[:300]!r}")
    text = []
    completed = False
    for line in answer.body.split(b"\n"):
        if line.startswith(b"data: {"):
            obj = json.loads(line[6:])
            if obj.get("type") == "response.output_text.delta":
                text.append(obj["delta"])
            completed = completed or obj.get("type") == "response.completed"
    if not completed or "".join(text) != "".join(words(chunks)):
        raise CheckFailed(f"incomplete Responses stream ({len(text)} deltas, done={completed})")


def check_stream(answer: Answer, chunks: int) -> None:
    if answer.status != 200:
        raise CheckFailed(f"status {answer.status}: {answer.body[:300]!r}")
    text = []
    done = False
    for line in answer.body.split(b"\n"):
        if line == b"data: [DONE]":
            done = True
        elif line.startswith(b"data: {"):
            obj = json.loads(line[6:])
            for choice in obj.get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    if not done or "".join(text) != "".join(words(chunks)):
        raise CheckFailed(f"incomplete stream ({len(text)} events, done={done})")


def big_request(port: int, model: str, size: int, key: str = "bench") -> tuple[bytes, str]:
    content = ("0123456789abcdef" * (size // 16 + 1))[:size]
    digest = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    return chat_request(port, model, content=content, key=key), digest


async def sequential(
    port: int, raw: bytes, count: int, check: Callable[[Answer], None]
) -> list[Answer]:
    conn = await Conn(port).open()
    try:
        out = []
        for _ in range(count):
            answer = await conn.send(raw)
            check(answer)
            out.append(answer)
        return out
    finally:
        conn.close()


async def closed_loop(
    port: int, raw: bytes, total: int, concurrency: int, check: Callable[[Answer], None]
) -> float:
    """``total`` requests over ``concurrency`` connections, each sending as soon as answered.
    Returns the wall time."""
    conns = [await Conn(port).open() for _ in range(concurrency)]
    left = [total]

    async def worker(conn: Conn) -> None:
        while left[0] > 0:
            left[0] -= 1
            check(await conn.send(raw))

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    return time.perf_counter() - start
