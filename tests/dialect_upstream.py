"""Fake providers that hold clients to their dialect, the way the real ones do.

One aiohttp server on 127.0.0.1, port 0; the upstream model name picks the provider it plays:

- ``kimi-*``: Moonshot's Kimi K2 thinking. Streams ``reasoning_content``; a later request whose
  assistant tool-call turn lacks ``reasoning_content`` gets Moonshot's 400.
- ``deepseek-*``: DeepSeek's reasoner in thinking mode, same rule, DeepSeek's 400 text.
- ``groq-*``: Groq. Streams reasoning as ``reasoning`` (and once together with content in one
  delta); 400 for ``logprobs``/``logit_bias``/``top_logprobs``/``messages[].name`` and for
  ``max_tokens`` above ``GROQ_MAX_OUTPUT``.
- ``mistral-*``: Mistral. 422 ``extra_forbidden`` for any body or message field it does not
  know (``max_completion_tokens``, ``stream_options``, ``reasoning_content``...), 400 for a
  tool-call id that is not 9 letters and digits; usage in its last chunk.
- ``ollama-*``: Ollama. Streams ``{"content": "", "reasoning": ...}`` deltas.

Every one plays the same two-turn agent: asked by a user, it thinks and calls ``read_file``;
given the tool's answer, it thinks again and answers ``ANSWER_PREFIX`` + the tool's text.
Streams carry a usage chunk only when ``stream_options.include_usage`` is asked for (Mistral:
always, in its last chunk). ``GET /v1/models`` lists ``MODELS`` for the key ``GOOD_KEY``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.serving import ServerThread

GOOD_KEY = "sk-dialect-good-key-0123456789"
MODELS = ["kimi-k2-thinking", "deepseek-reasoner", "groq-gpt-oss", "mistral-large", "ollama-qwen3"]
GROQ_MAX_OUTPUT = 65536
ANSWER_PREFIX = "The file says: "
TOOL = "read_file"
TOOL_ARGS = '{"path": "README.md"}'
READ_FILE_PATH = "README.md"  # what the agent reads when offered Claude Code's Read (tests set it)
PATCHED_FILE = "created-by-the-agent.txt"
PATCH = (
    f"*** Begin Patch\n*** Add File: {PATCHED_FILE}\n+written through trayproxy\n*** End Patch\n"
)

TOOL_IDS = {
    "kimi": "functions.read_file:0",
    "deepseek": "call_00_x7YzK2mQpR4sT9uV",
    "groq": "fc_6c3e9b2a-41f7-4d0e-9a1c-2b8f5e7d3c10",
    "mistral": "D681PevKs",
    "ollama": "call_ab12cd34",
}

_MISTRAL_BODY = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "safe_prompt",
        "parallel_tool_calls",
        "prompt_mode",
    }
)
_MISTRAL_MESSAGE = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
_NINE = re.compile(r"[A-Za-z0-9]{9}")


def thoughts(flavor: str, turn: int) -> list[str]:
    """The reasoning pieces a flavor streams on ``turn`` (1: before the tool call, 2: after)."""
    if turn == 1:
        return [f"[{flavor}] The user wants", " the README;", " I will read it."]
    return [f"[{flavor}] The tool answered;", " now I summarise."]


@dataclass
class DialectUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._server = ServerThread(self._app, "dialect-upstream")

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> DialectUpstream:
        self.url = self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def stop(self) -> None:
        self._server.stop()

    # ---------------------------------------------------------------- handlers

    async def models(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            return web.json_response(
                {"error": {"message": "Invalid API key", "type": "invalid_request_error"}},
                status=401,
            )
        data = [{"id": m, "object": "model", "owned_by": "fake"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        flavor = str(body.get("model", "")).split("-", 1)[0]
        refusal = self._refuse(flavor, body)
        if refusal is not None:
            return refusal
        messages = body["messages"]
        # the tool's answers since the last assistant turn (Claude Code may add text after)
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
        answers = [m for m in messages[last + 1 :] if m.get("role") == "tool"]
        turn = 2 if answers else 1
        tool_text = answers[-1].get("content") if answers else None
        if body.get("stream"):
            return await self._stream(request, flavor, body, turn, tool_text)
        return self._json(flavor, body, turn, tool_text)

    # ---------------------------------------------------------------- the dialects

    def _refuse(self, flavor: str, body: dict[str, Any]) -> web.Response | None:
        messages = body.get("messages", [])
        if flavor in ("kimi", "deepseek"):
            for i, msg in enumerate(messages):
                if (
                    msg.get("role") == "assistant"
                    and msg.get("tool_calls")
                    and msg.get("reasoning_content") is None
                ):
                    text = (
                        "thinking is enabled but reasoning_content is missing in assistant "
                        f"tool call message at index {i}"
                        if flavor == "kimi"
                        else "The `reasoning_content` in the thinking mode must be passed "
                        "back to the API."
                    )
                    return _error(400, {"message": text, "type": "invalid_request_error"})
        if flavor == "groq":
            for name in ("logprobs", "logit_bias", "top_logprobs"):
                if name in body:
                    return _error(
                        400,
                        {
                            "message": f"property '{name}' is unsupported",
                            "type": "invalid_request_error",
                        },
                    )
            for i, msg in enumerate(messages):
                if "name" in msg and msg.get("role") != "tool":
                    return _error(
                        400,
                        {
                            "message": f"'messages.{i}' : property 'name' is unsupported",
                            "type": "invalid_request_error",
                        },
                    )
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            if isinstance(limit, int) and limit > GROQ_MAX_OUTPUT:
                return _error(
                    400,
                    {
                        "message": "`max_tokens` must be less than or equal to "
                        f"`{GROQ_MAX_OUTPUT}`, the maximum value for `max_tokens` is less "
                        "than the `context_window` for this model",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                    },
                )
        if flavor == "mistral":
            for name in body:
                if name not in _MISTRAL_BODY:
                    return _extra_forbidden(["body", name], body[name])
            for i, msg in enumerate(messages):
                allowed = _MISTRAL_MESSAGE.get(msg.get("role"), frozenset())
                for name in msg:
                    if name not in allowed:
                        return _extra_forbidden(
                            ["body", "messages", i, msg["role"], name], msg[name]
                        )
                ids = [c.get("id") for c in msg.get("tool_calls") or []]
                if msg.get("tool_call_id") is not None:
                    ids.append(msg["tool_call_id"])
                for tool_id in ids:
                    if not isinstance(tool_id, str) or not _NINE.fullmatch(tool_id):
                        return web.json_response(
                            {
                                "object": "error",
                                "message": f"Tool call id was {tool_id} but must be a-z, A-Z, "
                                "0-9, with a length of 9.",
                                "type": "invalid_request_error",
                                "param": None,
                                "code": None,
                            },
                            status=400,
                        )
        return None

    def _json(
        self, flavor: str, body: dict[str, Any], turn: int, tool_text: str | None
    ) -> web.Response:
        thinking = "".join(thoughts(flavor, turn))
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if turn == 1:
            message["tool_calls"] = [_call(flavor, body)]
            finish = "tool_calls"
        else:
            message["content"] = ANSWER_PREFIX + str(tool_text)
            finish = "stop"
        if flavor in ("groq", "ollama"):
            message["reasoning"] = thinking
        elif flavor != "mistral":
            message["reasoning_content"] = thinking
        return web.json_response(
            {
                "id": "chatcmpl-dialect",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
            }
        )

    async def _stream(
        self,
        request: web.Request,
        flavor: str,
        body: dict[str, Any],
        turn: int,
        tool_text: str | None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        model = body["model"]

        async def send(
            delta: dict[str, Any] | None, finish: str | None = None, **extra: Any
        ) -> None:
            choices = (
                [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            )
            obj = {
                "id": "chatcmpl-dialect",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": choices,
                **extra,
            }
            await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")

        pieces = thoughts(flavor, turn)
        answer = [ANSWER_PREFIX, str(tool_text)] if turn == 2 else []
        await send({"role": "assistant", "content": ""})
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if flavor == "groq":
                delta: dict[str, Any] = {"reasoning": piece}
                if last and answer:  # Groq may send the first words with the last thought
                    delta["content"] = answer.pop(0)
            elif flavor == "ollama":
                delta = {"content": "", "reasoning": piece}
            elif flavor == "deepseek":
                delta = {"content": None, "reasoning_content": piece}
            elif flavor == "kimi":
                delta = {"reasoning_content": piece}
            else:  # Mistral: no separate reasoning field
                continue
            await send(delta)
        if turn == 1:
            call = _call(flavor, body)
            function = call["function"]
            await send(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": function["name"], "arguments": ""},
                        }
                    ]
                }
            )
            pieces = [function["arguments"]]
            await send({"tool_calls": [{"index": 0, "function": {"arguments": pieces[0]}}]})
            finish = "tool_calls"
        else:
            for word in answer:
                await send({"content": word})
            finish = "stop"
        usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
        if flavor == "mistral":
            await send({}, finish, usage=usage)
        else:
            await send({}, finish)
            options = body.get("stream_options") or {}
            if options.get("include_usage"):
                await send(None, usage=usage)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _call(flavor: str, body: dict[str, Any]) -> dict[str, Any]:
    """The agent's tool call: read_file; Claude Code's Read of ``READ_FILE_PATH`` when the
    request offers that tool; Codex's ``exec_command`` of ``cat READ_FILE_PATH``, or its
    ``apply_patch`` adding ``PATCHED_FILE`` when the user asks for a patch."""
    name, arguments = TOOL, TOOL_ARGS
    offered = [t.get("function", {}).get("name") for t in body.get("tools") or []]
    asked = json.dumps(body.get("messages", [])[-1:])
    if "Read" in offered:
        name, arguments = "Read", json.dumps({"file_path": READ_FILE_PATH})
    elif "apply_patch" in offered and "patch" in asked:
        name, arguments = "apply_patch", json.dumps({"input": PATCH})
    elif "exec_command" in offered:
        name, arguments = "exec_command", json.dumps({"cmd": f"cat {READ_FILE_PATH}"})
    return {
        "id": TOOL_IDS[flavor],
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _error(status: int, error: dict[str, Any]) -> web.Response:
    return web.json_response({"error": error}, status=status)


def _extra_forbidden(loc: list[Any], value: Any) -> web.Response:
    detail = {
        "type": "extra_forbidden",
        "loc": loc,
        "msg": "Extra inputs are not permitted",
        "input": value,
    }
    return web.json_response(
        {
            "object": "error",
            "message": {"detail": [detail]},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
        status=422,
    )
