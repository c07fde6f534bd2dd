"""The floor: the least a Python pass-through proxy can do, in aiohttp.

    python -m bench.floor --upstream http://127.0.0.1:PORT --port 0

Forwards every POST to the same path on the upstream with the body as received, and streams
the answer back chunk by chunk. No routing, no checks, no logging, no records: what any
aiohttp gateway pays before it does anything useful. Prints its port on the first line.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web

SKIP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(auto_decompress=False)

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer floor"}
        async with request.app["session"].post(
            upstream + request.path, data=body, headers=headers
        ) as up:
            out = web.StreamResponse(status=up.status)
            for key, value in up.headers.items():
                if key.lower() not in SKIP:
                    out.headers[key] = value
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/{path:.*}", forward)
    return app


async def serve(upstream: str, port: int) -> None:
    runner = web.AppRunner(make_app(upstream), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.upstream, args.port))
