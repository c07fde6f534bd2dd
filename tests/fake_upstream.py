"""A fake OpenAI-compatible provider on 127.0.0.1, port 0, in its own thread.

It records every request it receives and answers from a script chosen by the upstream model
name, so a test (or the Node client test) picks a behaviour through the config mapping:

- any name: a normal answer; streams send ``WORDS`` one chunk each.
- ``gated...``: streams the first chunk, then waits for ``fake.gate`` before the rest.
- ``error-400``, ``error-429``, ``error-500``: that status with an OpenAI error body.
- ``redirect``: a 307 to another host.
- ``slow``: waits ``fake.slow_seconds`` before answering.
- ``die-midstream``: streams two chunks, then drops the connection.
- ``stall``: streams one chunk, then holds the connection open for ``fake.slow_seconds``.
- ``gzip``: a JSON answer sent with ``Content-Encoding: gzip``.
- ``plain-stream``: a gated stream sent as ``text/plain`` with status 201.
- ``odd-headers``: a JSON answer with CORS grants and a hop-by-hop header named in
  ``Connection``.
- ``pings``: a stream of keep-alive comments only, for ``fake.slow_seconds``.
- ``auth-echo``: 401, echoing the key it was sent (as some providers do).
- ``echo-400``: 400, echoing the key it was sent.
- ``firehose``: a stream of ``FIREHOSE_BYTES`` as fast as the socket takes it.
- ``split``: a normal stream whose every event is cut in two writes, mid-JSON.
- ``late``: a stream whose headers come at once and its first token after 0.5 s.
- ``linger``: a normal stream whose body ends 1 s after its ``[DONE]``.
- ``no-usage``: a normal answer without token counts (``"usage": null``), even in a stream
  that asks for them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.serving import ServerThread

WORDS = ["Hello", " from", " the", " fake", " upstream", "."]
FIREHOSE_BYTES = 128 * 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_size: int


@dataclass
class FakeUpstream:
    requests: list[Seen] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    sent_last: threading.Event = field(default_factory=threading.Event)
    slow_seconds: float = 3.0
    disconnected: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    firehose_sent: int = 0

    def __post_init__(self) -> None:
        self._server = ServerThread(self._app, "fake-upstream")

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeUpstream:
        self.url = self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/{endpoint:.+}", self.endpoint)
        return app

    def stop(self) -> None:
        self.gate.set()
        self._server.stop()

    @property
    def last(self) -> Seen:
        assert self.requests, "the fake upstream received no request"
        return self.requests[-1]

    # ---------------------------------------------------------------- handlers

    async def models(self, request: web.Request) -> web.Response:
        self._record(request, None, 0)
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    def _record(self, request: web.Request, body: Any, size: int) -> None:
        self.requests.append(Seen(request.method, request.path, dict(request.headers), body, size))

    async def endpoint(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self._record(request, body, len(raw))
        endpoint = request.match_info["endpoint"]
        model = body.get("model", "")
        if model.startswith("error-"):
            status = int(model.split("-", 1)[1])
            headers = {"Retry-After": "7"} if status == 429 else {}
            return web.json_response(
                {
                    "error": {
                        "message": f"fake upstream says {status}",
                        "type": "fake_error",
                        "param": None,
                        "code": f"fake_{status}",
                    }
                },
                status=status,
                headers=headers,
            )
        if model == "redirect":
            raise web.HTTPTemporaryRedirect("http://example.invalid/v1/chat/completions")
        if model in ("auth-echo", "echo-400"):
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            status = 401 if model == "auth-echo" else 400
            return web.json_response(
                {
                    "error": {
                        "message": f"Incorrect API key provided: {key}. Find yours at ...",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=status,
            )
        if model == "slow":
            try:
                await asyncio.sleep(self.slow_seconds)
            except asyncio.CancelledError:
                self.disconnected.set()
                raise
        if model == "gzip":
            resp = self._json(endpoint, body)
            resp.enable_compression(web.ContentCoding.gzip)
            return resp
        if model == "odd-headers":
            resp = self._json(endpoint, body)
            resp.headers["Access-Control-Allow-Origin"] = "*"
            resp.headers["X-Hop"] = "hop-secret"
            resp.headers["Connection"] = "keep-alive, X-Hop"
            return resp
        if endpoint == "embeddings":
            return self._embeddings(body)
        if endpoint == "rerank":
            return self._rerank(body)
        if body.get("stream"):
            return await self._stream(request, endpoint, body)
        return self._json(endpoint, body)

    def _embeddings(self, body: dict[str, Any]) -> web.Response:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vector = [0.25, -0.5, 1.0, 2.0]
        data = []
        for i, _ in enumerate(inputs):
            if body.get("encoding_format") == "base64":
                emb: Any = base64.b64encode(struct.pack("<4f", *vector)).decode()
            else:
                emb = vector
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)},
            }
        )

    def _rerank(self, body: dict[str, Any]) -> web.Response:
        """Scores by how many query words a document holds, best first (Jina/Cohere shape)."""
        words = set(str(body.get("query", "")).lower().split())
        docs = [str(d) for d in body.get("documents", [])]
        scores = [len(words & set(d.lower().split())) / (len(words) or 1) for d in docs]
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        return web.json_response(
            {
                "object": "list",
                "model": body["model"],
                "results": [{"index": i, "relevance_score": scores[i]} for i in order],
                "usage": {"total_tokens": 5 * len(docs)},
            }
        )

    def _json(self, endpoint: str, body: dict[str, Any]) -> web.Response:
        text = "".join(WORDS)
        usage: dict[str, Any] | None = {
            "prompt_tokens": 11,
            "completion_tokens": 6,
            "total_tokens": 17,
        }
        if body["model"] == "no-usage":  # a server that counts nothing
            usage = None
        if endpoint == "completions":
            return web.json_response(
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                    ],
                    "usage": usage,
                }
            )
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage,
            }
        )

    def _chunk(self, endpoint: str, model: str, word: str | None, finish: bool) -> dict[str, Any]:
        if endpoint == "completions":
            return {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1,
                "model": model,
                "choices": [
                    {"index": 0, "text": word or "", "finish_reason": "stop" if finish else None}
                ],
            }
        delta = {"content": word} if word is not None else {}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if finish else None}],
        }

    async def _stream(
        self, request: web.Request, endpoint: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        model = body["model"]
        if model == "plain-stream":
            resp = web.StreamResponse(status=201, headers={"Content-Type": "text/plain"})
        else:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(obj: Any) -> None:
            event = b"data: " + json.dumps(obj).encode() + b"\n\n"
            if model == "split":
                half = len(event) // 2
                await resp.write(event[:half])
                await asyncio.sleep(0.01)
                event = event[half:]
            await resp.write(event)

        try:
            if model == "pings":
                deadline = asyncio.get_running_loop().time() + self.slow_seconds
                while asyncio.get_running_loop().time() < deadline:
                    await resp.write(b": ping\n\n")
                    await asyncio.sleep(0.1)
                await resp.write(b"data: [DONE]\n\n")
                return resp
            if model == "firehose":
                event = (
                    b"data: "
                    + json.dumps(self._chunk(endpoint, model, "x" * 4000, False)).encode()
                    + b"\n\n"
                )
                sent = 0
                while sent < FIREHOSE_BYTES:
                    await resp.write(event)  # waits while the peer does not read
                    sent += len(event)
                    self.firehose_sent = sent
                self.sent_last.set()
                await resp.write(b"data: [DONE]\n\n")
                return resp
            await resp.write(b": keep-alive comment\n\n")
            if model == "late":
                await asyncio.sleep(0.5)
            for i, word in enumerate(WORDS):
                await send(self._chunk(endpoint, model, word, False))
                if i == 0 and (model.startswith("gated") or model == "plain-stream"):
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, self.gate.wait, 20)
                if i == 1 and model == "die-midstream":
                    await asyncio.sleep(0.2)  # let the relay pass on what was sent
                    request.transport.close()  # type: ignore[union-attr]
                    return resp
                if i == 0 and model == "stall":
                    await asyncio.sleep(self.slow_seconds)
            await send(self._chunk(endpoint, model, None, True))
            opts = body.get("stream_options") or {}
            if opts.get("include_usage") and model != "no-usage":
                await send(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": [],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17},
                    }
                )
            self.sent_last.set()
            await resp.write(b"data: [DONE]\n\n")
            if model == "linger":
                await asyncio.sleep(1.0)
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise
        return resp
