"""A strict fake OpenAI-compatible provider with several keys, prices and long thinking.

One aiohttp server on 127.0.0.1, port 0. It serves ``POST /v1/chat/completions`` (streamed and
not) and an OpenRouter-shaped ``GET /v1/models``, and records every request it receives.

    with KeyedUpstream({"sk-a": rate_limited_header(7), "sk-b": OK}) as fake:   # own thread
        ...  # point a provider's base_url at fake.base_url
        assert [r.key for r in fake.served()] == ["sk-b"]

    async with KeyedUpstream({"sk-a": OK}) as fake:   # on the running event loop
        ...

Keys: ``keys`` maps a key (sent as ``Authorization: Bearer KEY``) to a ``Behaviour``:
``OK``; ``rate_limited_header(s)`` (429, ``Retry-After: s``); ``rate_limited_body(s)`` (429, no
``Retry-After``, Groq/OpenAI wording "... Please try again in 7.5s."); ``REJECTED`` (401
``invalid_api_key``); ``FORBIDDEN`` (403). The strings ``"ok"``, ``"rejected"`` and
``"forbidden"`` are accepted too. No bearer key, or a key not in the mapping: 401.
``set_key()`` changes a key's behaviour while the fake runs.

A chat request is checked in the order a provider does: the key (401/403), then the body (400
in OpenAI's error shape: not JSON, not an object, a parameter Chat Completions does not take,
no ``model``, no or empty ``messages``, a message without a known ``role``, a non-boolean
``stream``, ``stream_options`` without ``stream: true``), then the key's rate limit (429).

The model name picks the answer (``scripts`` maps a name to a ``Script`` and wins over these):

- any name: "hello from MODEL". A stream sends a role chunk, three content chunks, a
  ``finish_reason`` chunk, a usage chunk (``choices: []``) only when
  ``stream_options.include_usage`` is true (and then ``"usage": null`` in the others, as
  OpenAI does), then ``data: [DONE]``. The counts are ``usage`` (or ``usage_by_model[MODEL]``).
- ``think-S``: like any name, but after the role chunk it is silent for S seconds, then
  streams ``reasoning_content`` (``REASONING``) before the content.
- ``slow-H``: sends nothing, not even the status line, for H seconds, then answers normally.
- ``dies-S``: the role chunk, S seconds of silence, then the connection closes without
  content, finish or ``[DONE]`` (not streamed: S seconds, then closes without an answer).

Not streamed, a thinker waits ``headers_after + silent_after_role`` and puts its reasoning in
``message.reasoning_content``. A ``think-``/``slow-``/``dies-`` name whose number does not
parse is a 400, so a typo never passes for a normal model.

``GET /v1/models`` lists ``catalog`` (default ``CATALOG``: a priced, a free and an unpriced
model; build entries with ``priced()``/``unpriced()``). It needs no key unless
``models_need_key`` is true (then the key's behaviour applies, as for a chat request).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.serving import ServerThread

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
REASONING = ["Let me think", " about this", " carefully."]
ALLOWED_PARAMS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "stop",
        "reasoning_effort",
        "user",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
    }
)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Behaviour:
    """What the fake does with a request made with one key."""

    kind: str  # "ok", "rate_limited_header", "rate_limited_body", "rejected", "forbidden"
    seconds: float = 0.0  # the wait a 429 asks for
    wait_text: str = ""  # rate_limited_body: how the wait is written ("7.5s", "600ms")


OK = Behaviour("ok")
REJECTED = Behaviour("rejected")
FORBIDDEN = Behaviour("forbidden")


def rate_limited_header(seconds: float) -> Behaviour:
    """429 with ``Retry-After: seconds`` and an error body that names no wait."""
    return Behaviour("rate_limited_header", seconds)


def rate_limited_body(seconds: float, *, wait_text: str | None = None) -> Behaviour:
    """429 with no ``Retry-After``; the message ends "Please try again in 7.5s." (the wait
    written as ``wait_text`` when given, as in OpenAI's "600ms" or "1m30s")."""
    return Behaviour("rate_limited_body", seconds, wait_text or f"{seconds:g}s")


def behaviour(value: Behaviour | str) -> Behaviour:
    """A ``Behaviour``, or one named by a string ("ok", "rejected", "forbidden")."""
    if isinstance(value, Behaviour):
        return value
    named = {"ok": OK, "rejected": REJECTED, "forbidden": FORBIDDEN}
    if value not in named:
        raise ValueError(f"unknown key behaviour {value!r}: use one of {sorted(named)}")
    return named[value]


@dataclass(frozen=True)
class Usage:
    """Token counts, as OpenAI counts them: ``prompt_tokens`` includes ``cached_tokens`` and
    ``completion_tokens`` includes ``reasoning_tokens``."""

    prompt_tokens: int = 1000
    completion_tokens: int = 200
    cached_tokens: int = 400
    reasoning_tokens: int = 50

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass(frozen=True)
class Script:
    """How a model answers a request the fake accepted."""

    headers_after: float = 0.0  # silence before the status line and headers
    silent_after_role: float = 0.0  # silence after the role chunk
    reasoning: bool = False  # stream REASONING as reasoning_content before the content
    dies: bool = False  # close the connection after the silence, before any content


_SCRIPTED = re.compile(r"(think|slow|dies)-(.*)")


def script_for(model: str, scripts: Mapping[str, Script]) -> Script:
    """The script of ``model``; ValueError for a ``think-``/``slow-``/``dies-`` name whose
    delay does not parse."""
    if model in scripts:
        return scripts[model]
    match = _SCRIPTED.fullmatch(model)
    if match is None:
        return Script()
    kind, number = match.groups()
    try:
        seconds = float(number)
    except ValueError:
        raise ValueError(f"model {model!r}: {number!r} is not a number of seconds") from None
    if kind == "think":
        return Script(silent_after_role=seconds, reasoning=True)
    if kind == "slow":
        return Script(headers_after=seconds)
    return Script(silent_after_role=seconds, dies=True)


def priced(
    model_id: str,
    prompt: str,
    completion: str,
    *,
    cache_read: str | None = None,
    context_length: int = 131072,
    name: str | None = None,
) -> dict[str, Any]:
    """An OpenRouter ``/models`` entry; prices are strings, dollars per token."""
    pricing = {"prompt": prompt, "completion": completion, "request": "0", "image": "0"}
    if cache_read is not None:
        pricing["input_cache_read"] = cache_read
    return {
        "id": model_id,
        "name": name or model_id,
        "context_length": context_length,
        "pricing": pricing,
    }


def unpriced(model_id: str, *, context_length: int = 32768) -> dict[str, Any]:
    """An entry without ``pricing``."""
    return {"id": model_id, "name": model_id, "context_length": context_length}


CATALOG: tuple[dict[str, Any], ...] = (
    priced(
        "paid-model", "0.0000006", "0.0000025", cache_read="0.00000015", name="Fake: Paid Model"
    ),
    priced("free-model", "0", "0", name="Fake: Free Model"),
    unpriced("unpriced-model"),
)


@dataclass(frozen=True)
class Received:
    """One request, as the fake received it and what it decided to answer."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str
    key: str | None  # the bearer key, None without ``Authorization: Bearer``
    model: str | None
    body: Any  # the parsed JSON, None when the body was not JSON
    headers: dict[str, str]
    status: int  # the status answered (a dying request: 200 if streamed, else 0)


def problem(body: Any, allowed: frozenset[str] = ALLOWED_PARAMS) -> dict[str, Any] | None:
    """The OpenAI error object a provider answers to this chat body with 400, or None."""
    if not isinstance(body, dict):
        return _invalid("Invalid type for request body: expected an object.", None, "invalid_type")
    unknown = sorted(name for name in body if name not in allowed)
    if unknown:
        noun = "argument" if len(unknown) == 1 else "arguments"
        return _invalid(f"Unrecognized request {noun} supplied: {', '.join(unknown)}", None, None)
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _invalid("you must provide a model parameter", None, None)
    if "messages" not in body:
        return _invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        return _invalid(
            "Invalid type for 'messages': expected an array.", "messages", "invalid_type"
        )
    if not messages:
        return _invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            return _invalid(f"Invalid type for '{where}': expected an object.", where, None)
        if "role" not in message:
            return _invalid(
                f"Missing required parameter: '{where}.role'.",
                f"{where}.role",
                "missing_required_parameter",
            )
        if message["role"] not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES)
            return _invalid(
                f"Invalid value: {message['role']!r}. Supported values are: {supported}.",
                f"{where}.role",
                "invalid_value",
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        return _invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if "stream_options" in body and body.get("stream") is not True:
        return _invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    return None


def _invalid(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"message": message, "type": "invalid_request_error", "param": param, "code": code}


def _error(
    status: int, error: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error}, status=status, headers=headers)


_ANY: Any = object()


# ---------------------------------------------------------------- the server


class KeyedUpstream:
    def __init__(
        self,
        keys: Mapping[str, Behaviour | str],
        *,
        catalog: Iterable[dict[str, Any]] = CATALOG,
        models_need_key: bool = False,
        usage: Usage | None = None,
        usage_by_model: Mapping[str, Usage] | None = None,
        scripts: Mapping[str, Script] | None = None,
        extra_params: Iterable[str] = (),
    ) -> None:
        self._keys = {key: behaviour(value) for key, value in keys.items()}
        # read for every request: a test may replace these while the fake runs
        self.catalog = list(catalog)
        self.models_need_key = models_need_key
        self.usage = usage or Usage()
        self.usage_by_model = dict(usage_by_model or {})
        self.scripts = dict(scripts or {})
        self.allowed = ALLOWED_PARAMS | frozenset(extra_params)
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._thread = ServerThread(self._app, "keyed-upstream")
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> KeyedUpstream:
        """Serve from a thread with an event loop of its own (for sync tests)."""
        self.url = self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> KeyedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> KeyedUpstream:
        """Serve on the running event loop (for async code)."""
        self._runner = web.AppRunner(self._app(), handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_post(CHAT_PATH, self._chat)
        return app

    # ---------------------------------------------------------------- what a test does

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def set_key(self, key: str, value: Behaviour | str) -> None:
        """Give ``key`` a behaviour from the next request on (thread-safe)."""
        new = behaviour(value)
        with self._lock:
            self._keys[key] = new

    def remove_key(self, key: str) -> None:
        """Forget ``key``: it is answered 401 from the next request on (thread-safe)."""
        with self._lock:
            self._keys.pop(key, None)

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> Received:
        requests = self.requests
        assert requests, "the keyed upstream received no request"
        return requests[-1]

    def requests_with(self, key: str | None) -> list[Received]:
        """The requests made with ``key`` (None: without a bearer key), in order."""
        return [r for r in self.requests if r.key == key]

    def count(
        self, *, key: Any = _ANY, path: Any = _ANY, model: Any = _ANY, status: Any = _ANY
    ) -> int:
        """How many requests arrived, of the key, path, model and status given."""
        return sum(
            1
            for r in self.requests
            if (key is _ANY or r.key == key)
            and (path is _ANY or r.path == path)
            and (model is _ANY or r.model == model)
            and (status is _ANY or r.status == status)
        )

    def served(self) -> list[Received]:
        """The chat requests answered 200, in order (``[r.key for r in fake.served()]``)."""
        return [r for r in self.requests if r.path == CHAT_PATH and r.status == 200]

    @property
    def models_fetches(self) -> int:
        return self.count(path=MODELS_PATH)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``condition`` from a test thread (never on the fake's own loop)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    async def wait_until_async(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # ---------------------------------------------------------------- handlers

    def _record(self, request: web.Request, key: str | None, body: Any, status: int) -> None:
        model = body.get("model") if isinstance(body, dict) else None
        received = Received(
            at=time.monotonic(),
            method=request.method,
            path=request.path,
            key=key,
            model=model if isinstance(model, str) else None,
            body=body,
            headers=dict(request.headers),
            status=status,
        )
        with self._lock:
            self._requests.append(received)

    def _refusal(self, key: str | None) -> web.Response | None:
        """401/403 for a missing, unknown, rejected or forbidden key; None otherwise."""
        if key is None:
            return _error(
                401,
                _invalid(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    None,
                    None,
                ),
            )
        with self._lock:
            found = self._keys.get(key)
        if found is None or found.kind == "rejected":
            return _error(401, _invalid("Invalid API Key", None, "invalid_api_key"))
        if found.kind == "forbidden":
            return _error(
                403,
                {
                    "message": "This key is not allowed to use this resource.",
                    "type": "permission_error",
                    "param": None,
                    "code": "permission_denied",
                },
            )
        return None

    def _rate_limit(self, key: str | None, model: str) -> web.Response | None:
        with self._lock:
            found = self._keys.get(key) if key is not None else None
        if found is None or found.kind == "ok":
            return None
        if found.kind == "rate_limited_header":
            return _error(
                429,
                {
                    "message": "Too many requests, slow down.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                },
                headers={"Retry-After": f"{found.seconds:g}"},
            )
        return _error(
            429,
            {
                "message": f"Rate limit reached for model `{model}` in organization "
                "`org_fake01` on tokens per min (TPM): Limit 6000, Used 5990. "
                f"Please try again in {found.wait_text}.",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            },
        )

    async def _models(self, request: web.Request) -> web.Response:
        key = _bearer(request)
        if self.models_need_key:
            refusal = self._refusal(key) or self._rate_limit(key, "*")
            if refusal is not None:
                self._record(request, key, None, refusal.status)
                return refusal
        self._record(request, key, None, 200)
        return web.json_response({"data": list(self.catalog)})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        key = _bearer(request)
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        answer = self._refusal(key)
        if answer is None and body is None:
            answer = _error(
                400,
                _invalid(
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly.)",
                    None,
                    None,
                ),
            )
        if answer is None:
            error = problem(body, self.allowed)
            answer = _error(400, error) if error else self._rate_limit(key, body["model"])
        script = Script()
        if answer is None:
            try:
                script = script_for(body["model"], self.scripts)
            except ValueError as exc:
                answer = _error(400, _invalid(str(exc), "model", "model_not_found"))
        if answer is not None:
            self._record(request, key, body, answer.status)
            return answer
        stream = body.get("stream") is True
        self._record(request, key, body, 0 if script.dies and not stream else 200)
        if stream:
            return await self._stream(request, body, script)
        return await self._json(request, body, script)

    # ---------------------------------------------------------------- answers

    def _usage(self, model: str) -> dict[str, Any]:
        return self.usage_by_model.get(model, self.usage).to_dict()

    async def _json(
        self, request: web.Request, body: dict[str, Any], script: Script
    ) -> web.Response:
        model = body["model"]
        await asyncio.sleep(script.headers_after + script.silent_after_role)
        if script.dies:
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()  # never sent
        message: dict[str, Any] = {"role": "assistant", "content": f"hello from {model}"}
        if script.reasoning:
            message["reasoning_content"] = "".join(REASONING)
        return web.json_response(
            {
                "id": "chatcmpl-keyed",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": self._usage(model),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], script: Script
    ) -> web.StreamResponse:
        model = body["model"]
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True
        await asyncio.sleep(script.headers_after)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)

        async def send(delta: dict[str, Any] | None, finish: str | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": "chatcmpl-keyed",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                chunk["usage"] = self._usage(model) if delta is None else None
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        await send({"role": "assistant", "content": ""})
        await asyncio.sleep(script.silent_after_role)
        if script.dies:
            request.transport.close()  # type: ignore[union-attr]
            return resp
        if script.reasoning:
            for piece in REASONING:
                await send({"reasoning_content": piece})
        for piece in ("hello", " from", f" {model}"):
            await send({"content": piece})
        await send({}, "stop")
        if with_usage:
            await send(None)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
