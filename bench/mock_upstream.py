"""A fast fake OpenAI provider for benchmarks: ``python -m bench.mock_upstream``.

A bare asyncio protocol (no framework) answering ``POST .../chat/completions`` from
precomputed bytes, so that the provider costs as little as possible next to the proxy being
measured:

- ``"stream": true``: ``--chunks`` SSE events, one word each, a finish chunk, a usage chunk when
  ``stream_options.include_usage`` is asked for, then ``[DONE]``; chunked transfer encoding.
  Written all at once, except for a model whose name contains ``paced``: then one write per
  event, ``--delay`` seconds apart, and ``--paced-chunks`` words.
- otherwise a chat.completion JSON body with usage.
- a request body over 64 KiB is parsed, and the answer's content is ``sha256:<hex>`` of the
  last message's content, so that a load generator can check that a large body arrived whole.

Listens on 127.0.0.1 and prints its port on the first line. Keep-alive, HTTP/1.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys

WORDS = [f" word{i}" for i in range(20)]
BIG_BODY = 64 * 1024


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def words(count: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(count)]


class Script:
    """Every answer, encoded once."""

    def __init__(self, chunks: int) -> None:
        self.words = words(chunks)
        usage = {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks}
        self.usage = usage
        events = [_chunk({"role": "assistant", "content": ""})]
        events += [_chunk({"content": w}) for w in self.words]
        events.append(_chunk({}, "stop"))
        self.events = [b"data: " + _json(e) + b"\n\n" for e in events]
        self.usage_event = (
            b"data: " + _json({**_chunk({}), "choices": [], "usage": usage}) + b"\n\n"
        )
        self.done = b"data: [DONE]\n\n"
        self.json_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        self.stream_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )

    def answer(self, content: str) -> bytes:
        body = _json(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1,
                "model": "bench",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": self.usage,
            }
        )
        return self.json_head + str(len(body)).encode() + b"\r\n\r\n" + body


def _flag(body: bytes, name: bytes) -> bool:
    return b'"' + name + b'":true' in body or b'"' + name + b'": true' in body


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Handler(asyncio.Protocol):
    def __init__(self, script: Script, paced: Script, delay: float) -> None:
        self.script = script
        self.paced = paced
        self.delay = delay
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.plain = script.answer("".join(script.words))
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].lower().split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            if _flag(body, b"stream"):
                self.busy = True
                asyncio.get_running_loop().create_task(self._stream(body))
                return
            assert self.transport is not None
            if length > BIG_BODY:
                content = json.loads(body)["messages"][-1]["content"]
                digest = hashlib.sha256(content.encode()).hexdigest()
                self.transport.write(self.script.answer("sha256:" + digest))
            else:
                self.transport.write(self.plain)

    async def _stream(self, body: bytes) -> None:
        t = self.transport
        assert t is not None
        paced = b"paced" in body
        s = self.paced if paced else self.script
        t.write(s.stream_head)
        events = list(s.events)
        if _flag(body, b"include_usage"):
            events.append(s.usage_event)
        events.append(s.done)
        if paced:
            for e in events:
                if t.is_closing():
                    return
                t.write(_chunked(e))
                await asyncio.sleep(self.delay)
        else:
            t.write(b"".join(_chunked(e) for e in events))
        t.write(b"0\r\n\r\n")
        self.busy = False
        self._next()


async def serve(port: int, delay: float, chunks: int, paced_chunks: int) -> None:
    script, paced = Script(chunks), Script(paced_chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Handler(script, paced, delay), "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--delay", type=float, default=0.002, help="seconds between events of a paced stream"
    )
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument(
        "--paced-chunks", type=int, default=20, help="content chunks per paced stream"
    )
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.delay, args.chunks, args.paced_chunks))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
