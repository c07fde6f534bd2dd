"""A fast fake OpenAI-compatible provider for benchmarks: ``python -m bench.mock_upstream``.

Answers chat completions (JSON, or SSE with ``stream: true``) from a fixed script, with an
optional delay per chunk. Listens on 127.0.0.1; prints its port on the first line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web

WORDS = [f" word{i}" for i in range(20)]


def chunk(model: str, text: str | None) -> bytes:
    delta = {"content": text} if text is not None else {}
    obj = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None if text else "stop"}],
    }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def make_app(delay: float) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "m")
        usage = {"prompt_tokens": 10, "completion_tokens": len(WORDS), "total_tokens": 30}
        if not body.get("stream"):
            if delay:
                await asyncio.sleep(delay * len(WORDS))
            return web.json_response(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "".join(WORDS)},
                        }
                    ],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for word in WORDS:
            if delay:
                await asyncio.sleep(delay)
            await resp.write(chunk(model, word))
        await resp.write(chunk(model, None))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(
                b"data: "
                + json.dumps(
                    {
                        "id": "c",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                ).encode()
                + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(port: int, delay: float) -> None:
    runner = web.AppRunner(make_app(delay), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.delay))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
