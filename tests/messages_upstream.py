"""A strict fake provider that speaks Anthropic's Messages API, on 127.0.0.1, port 0.

It serves ``POST /v1/messages``, ``POST /v1/messages/count_tokens`` and ``GET /v1/models``,
each also under the ``/anthropic`` prefix (as Moonshot, DeepSeek and others serve the API),
records every request as a ``Seen`` in ``requests``, and refuses what Anthropic refuses, in its
error shape (``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``):

- 401 ``authentication_error`` unless ``x-api-key: GOOD_KEY`` or ``Authorization: Bearer
  GOOD_KEY``; 400 without an ``anthropic-version`` header.
- 400 ``invalid_request_error`` for: a top-level field outside ``MESSAGES_FIELDS`` (or
  ``COUNT_TOKENS_FIELDS``), ``"<field>: Extra inputs are not permitted"``; a missing ``model``,
  ``messages`` or ``max_tokens``, ``max_tokens`` not an int >= 1; empty ``messages``, a role
  other than user/assistant, a first message that is not the user's, a message field other
  than role/content, a content block of unknown type or with a field its type does not have;
  a ``tool_result`` whose ``tool_use_id`` is not a ``tool_use`` of the message just before it,
  and a ``tool_use`` not answered by a ``tool_result`` in the message just after it; a thinking
  block whose ``signature`` is not the one this fake gave it (``sign``); with thinking on, a
  tool-use assistant turn not opening with its thinking block, a ``temperature`` other than
  1, ``thinking.budget_tokens`` under 1024 or not under ``max_tokens``.
- 404 ``not_found_error`` for any other path.
- A ``system`` message inside ``messages`` is taken only under the ``anthropic-beta`` that
  allows it (``MID_SYSTEM_BETA``, as Claude Code sends).

The model name picks the behaviour:

- any name (``AGENT``, say): the two-turn agent. To a user turn it answers, when the request
  enables ``thinking``, a thinking block (``THINKING``, signed by ``sign``), then the text
  ``FIRST_TEXT`` and a ``tool_use`` of ``TOOL`` with input ``TOOL_INPUT`` (id ``toolu_01...``;
  when the request offers Claude Code's ``Read`` tool, ``Read`` of ``READ_FILE_PATH``),
  stop_reason ``tool_use``. To a request whose last user message holds a ``tool_result`` it
  answers ``ANSWER_PREFIX`` + the tool result's text, stop_reason ``end_turn``.
- ``OVERLOADED``: 529 ``overloaded_error``.
- ``RATE_LIMITED``: 429 ``rate_limit_error`` with ``retry-after: RETRY_AFTER``.
- ``DIE_MIDSTREAM``: a stream of message_start, one text content_block_start and one
  text_delta, then the connection is closed (a non-streamed request gets the normal answer).
- ``ERROR_MIDSTREAM``: a stream of message_start, ping, then ``event: error`` with an
  ``overloaded_error`` (as Anthropic does under load), then the stream ends cleanly.
- ``MAX_TOKENS``: the text ``TRUNCATED_TEXT`` only, stop_reason ``max_tokens``, output tokens
  = the request's ``max_tokens``.

Streams follow Anthropic's grammar: ``event: <type>`` then ``data: <json repeating "type">``
then a blank line; message_start (usage: input tokens, output_tokens 1), ping, then per block
content_block_start / content_block_delta... / content_block_stop (text in three text_delta
pieces; thinking as thinking_delta pieces then one signature_delta; tool input as three
input_json_delta pieces, the first empty), then message_delta (stop_reason, usage with the
output tokens) and message_stop.

Token counts (``count_tokens``): the number of whitespace-separated words in every text of the
request (``system``, string contents, ``text`` and ``thinking`` blocks, ``tool_result``
contents), plus 10 per entry of ``tools``. Output tokens are counted the same way over the
answer's blocks (10 per ``tool_use``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.serving import ServerThread

GOOD_KEY = "sk-ant-fake-good-key-0123456789"

AGENT = "claude-fake-agent"
OVERLOADED = "overloaded"
RATE_LIMITED = "rate-limited"
DIE_MIDSTREAM = "die-midstream"
ERROR_MIDSTREAM = "error-midstream"
MAX_TOKENS = "max-tokens"
MODELS = [AGENT, OVERLOADED, RATE_LIMITED, DIE_MIDSTREAM, ERROR_MIDSTREAM, MAX_TOKENS]

RETRY_AFTER = "7"
TOOL = "read_file"
TOOL_INPUT = {"path": "README.md"}
# Claude Code offers "Read" instead: the agent reads this file with it (tests set it)
READ_FILE_PATH = "README.md"
# the beta under which Anthropic takes Claude Code's system messages in the conversation
MID_SYSTEM_BETA = "mid-conversation-system"
THINKING = "The user wants the README. I will read it with read_file."
FIRST_TEXT = "Let me read the README first."
ANSWER_PREFIX = "The file says: "
TRUNCATED_TEXT = "Let me read the"
TOOL_ID = re.compile(r"toolu_01[A-Za-z0-9]{22}")
MESSAGE_ID = re.compile(r"msg_01[A-Za-z0-9]{22}")

MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_k",
        "top_p",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
    }
)
COUNT_TOKENS_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "mcp_servers",
        "context_management",
        "output_config",
    }
)

# The fields each content block type may carry; types not listed here are taken as they come.
_BLOCK_FIELDS = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "document": frozenset({"type", "source", "cache_control", "citations", "context", "title"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control", "caller"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
}
_OTHER_BLOCKS = frozenset(
    {
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
_SIGNING_KEY = b"messages-upstream-signing-key"
_ALNUM = string.ascii_letters + string.digits


def sign(thinking: str) -> str:
    """The signature this fake gives a thinking block, and demands back with it."""
    digest = hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"EqQB" + digest).decode()


def count_tokens(body: dict[str, Any]) -> int:
    """Words in every text of a request, plus 10 per tool (see the module's docstring)."""
    words = _words(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            words += _words(message.get("content"))
    tools = body.get("tools")
    return words + 10 * (len(tools) if isinstance(tools, list) else 0)


def _words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            total += _words(block.get("text"))
        elif kind == "thinking":
            total += _words(block.get("thinking"))
        elif kind == "tool_result":
            total += _words(block.get("content"))
        elif kind == "tool_use":
            total += 10
    return total


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(22))


class Refusal(Exception):
    """A request Anthropic would refuse: the status, error type and message it answers."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def _invalid(message: str) -> Refusal:
    return Refusal(400, "invalid_request_error", message)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class MessagesUpstream:
    requests: list[Seen] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._server = ServerThread(self._app, "messages-upstream")

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> MessagesUpstream:
        self.url = self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for prefix in ("", "/anthropic"):
            app.router.add_post(f"{prefix}/v1/messages", self.messages)
            app.router.add_post(f"{prefix}/v1/messages/count_tokens", self.count)
            app.router.add_get(f"{prefix}/v1/models", self.models)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    def stop(self) -> None:
        self._server.stop()

    @property
    def last(self) -> Seen:
        assert self.requests, "the fake Messages upstream received no request"
        return self.requests[-1]

    # ---------------------------------------------------------------- handlers

    async def messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._accept(request)
            beta = request.headers.get("anthropic-beta", "")
            _check_body(body, MESSAGES_FIELDS, mid_system=MID_SYSTEM_BETA in beta)
        except Refusal as refusal:
            return _error(refusal)
        model = body["model"]
        if model == OVERLOADED:
            return _error(Refusal(529, "overloaded_error", "Overloaded"))
        if model == RATE_LIMITED:
            return _error(
                Refusal(
                    429,
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization of 50 "
                    "requests per minute. Please try again later.",
                ),
                {"retry-after": RETRY_AFTER},
            )
        content, stop_reason, output_tokens = _answer(body)
        message = {
            "id": _new_id("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": _usage(count_tokens(body), output_tokens),
        }
        if body.get("stream"):
            return await self._stream(request, message)
        return web.json_response(message, headers={"request-id": _new_id("req_01")})

    async def count(self, request: web.Request) -> web.Response:
        try:
            body = await self._accept(request)
            _check_body(body, COUNT_TOKENS_FIELDS)
        except Refusal as refusal:
            return _error(refusal)
        return web.json_response(
            {"input_tokens": count_tokens(body)}, headers={"request-id": _new_id("req_01")}
        )

    async def models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        try:
            self._check_headers(request)
        except Refusal as refusal:
            return _error(refusal)
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for m in MODELS
        ]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
        )

    async def not_found(self, request: web.Request) -> web.Response:
        self._record(request, None)
        return _error(Refusal(404, "not_found_error", "Not Found"))

    # ---------------------------------------------------------------- checks

    def _record(self, request: web.Request, body: Any) -> None:
        self.requests.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )

    async def _accept(self, request: web.Request) -> dict[str, Any]:
        """Record the request, then refuse it unless its headers and JSON body are good."""
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self._record(request, body)
        self._check_headers(request)
        if not isinstance(body, dict):
            raise _invalid("There was an issue with your request body: expected a JSON object")
        return body

    def _check_headers(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            auth = request.headers.get("Authorization", "")
            key = auth[7:] if auth[:7].lower() == "bearer " else None
        if key != GOOD_KEY:
            raise Refusal(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")

    # ---------------------------------------------------------------- the stream

    async def _stream(self, request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "request-id": _new_id("req_01"),
            }
        )
        await resp.prepare(request)

        async def send(kind: str, **data: Any) -> None:
            payload = json.dumps({"type": kind, **data}, separators=(",", ":"))
            await resp.write(f"event: {kind}\ndata: {payload}\n\n".encode())

        model = message["model"]
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(message["usage"]["input_tokens"], 1),
        }
        await send("message_start", message=start)
        if model == DIE_MIDSTREAM:
            await send("content_block_start", index=0, content_block={"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": "Let me"}
            await send("content_block_delta", index=0, delta=delta)
            await asyncio.sleep(0.2)  # let a relay pass on what was sent
            request.transport.close()  # type: ignore[union-attr]
            return resp
        await send("ping")
        if model == ERROR_MIDSTREAM:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            await send("error", error=error)
            await resp.write_eof()
            return resp
        for index, block in enumerate(message["content"]):
            await send("content_block_start", index=index, content_block=_opening(block))
            for delta in _deltas(block):
                await send("content_block_delta", index=index, delta=delta)
            await send("content_block_stop", index=index)
        await send(
            "message_delta",
            delta={"stop_reason": message["stop_reason"], "stop_sequence": None},
            usage={"output_tokens": message["usage"]["output_tokens"]},
        )
        await send("message_stop")
        await resp.write_eof()
        return resp


# -------------------------------------------------------------------- the agent


def _answer(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    """The content blocks, stop reason and output tokens of the answer to ``body``."""
    if body["model"] == MAX_TOKENS:
        return [{"type": "text", "text": TRUNCATED_TEXT}], "max_tokens", body["max_tokens"]
    results = _last_tool_results(body["messages"])
    if results is not None:
        content = [{"type": "text", "text": ANSWER_PREFIX + results}]
        return content, "end_turn", _words(content)
    content = []
    if _thinking_on(body):
        content.append({"type": "thinking", "thinking": THINKING, "signature": sign(THINKING)})
    content.append({"type": "text", "text": FIRST_TEXT})
    name, tool_input = TOOL, dict(TOOL_INPUT)
    if any(t.get("name") == "Read" for t in body.get("tools") or []):  # Claude Code's tool
        name, tool_input = "Read", {"file_path": READ_FILE_PATH}
    content.append(
        {"type": "tool_use", "id": _new_id("toolu_01"), "name": name, "input": tool_input}
    )
    return content, "tool_use", _words(content)


def _last_tool_results(messages: list[dict[str, Any]]) -> str | None:
    """The text of the ``tool_result`` blocks of the last user message, if it holds any."""
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if not isinstance(content, list):
            return None
        texts = [_result_text(b) for b in content if b.get("type") == "tool_result"]
        return "\n".join(texts) if texts else None
    return None


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _opening(block: dict[str, Any]) -> dict[str, Any]:
    """A block as its content_block_start carries it: empty, to be filled by deltas."""
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}


def _deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "text":
        return [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 3)]
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], 3)]
        return [*deltas, {"type": "signature_delta", "signature": block["signature"]}]
    raw = json.dumps(block["input"])
    return [{"type": "input_json_delta", "partial_json": p} for p in ["", *_pieces(raw, 2)]]


def _pieces(text: str, n: int) -> list[str]:
    """``text`` cut in ``n`` pieces (fewer if it is shorter), none empty."""
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -------------------------------------------------------------------- validation


def _check_body(body: dict[str, Any], allowed: frozenset[str], *, mid_system: bool = False) -> None:
    for name in body:
        if name not in allowed:
            raise _invalid(f"{name}: Extra inputs are not permitted")
    if "model" not in body:
        raise _invalid("model: Field required")
    if not isinstance(body["model"], str):
        raise _invalid("model: Input should be a valid string")
    if "max_tokens" in allowed:
        if "max_tokens" not in body:
            raise _invalid("max_tokens: Field required")
        limit = body["max_tokens"]
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise _invalid("max_tokens: Input should be a valid integer")
        if limit < 1:
            raise _invalid("max_tokens: Input should be greater than or equal to 1")
    _check_system(body.get("system"))
    _check_tools(body.get("tools"))
    _check_thinking(body)
    _check_messages(body, mid_system)


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid("system: Input should be a valid list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid(f"system.{i}.type: Input should be 'text'")
        _check_fields(block, _BLOCK_FIELDS["text"], f"system.{i}")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _invalid("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _invalid(f"tools.{i}.name: Field required")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise _invalid(f"tools.{i}.custom.input_schema: Field required")


def _check_thinking(body: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise _invalid(
            f"thinking: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'adaptive', 'disabled', 'enabled'"
        )
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise _invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise _invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if "max_tokens" in body and body["max_tokens"] <= budget:
            raise _invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                "our documentation at https://docs.claude.com/en/docs/build-with-claude/"
                "extended-thinking#max-tokens-and-context-window-size"
            )
    if _thinking_on(body) and body.get("temperature", 1) != 1:
        raise _invalid(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/"
            "extended-thinking#feature-compatibility"
        )


def _check_messages(body: dict[str, Any], mid_system: bool = False) -> None:
    if "messages" not in body:
        raise _invalid("messages: Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _invalid("messages: Input should be a valid list")
    if not messages:
        raise _invalid("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages.{i}: Input should be a valid dictionary")
        for name in ("role", "content"):
            if name not in message:
                raise _invalid(f"messages.{i}.{name}: Field required")
        _check_fields(message, frozenset({"role", "content"}), f"messages.{i}")
        if message["role"] == "system" and mid_system and i > 0:
            continue  # Claude Code's reminders, with the beta that allows them
        if message["role"] not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise _invalid(f"messages.{i}.content: Input should be a valid list")
        for j, block in enumerate(content):
            _check_block(block, f"messages.{i}.content.{j}")
    if messages[0]["role"] != "user":
        raise _invalid('messages: first message must use the "user" role')
    _check_pairing(messages)
    _check_thinking_turn(body)


def _check_fields(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in allowed:
            raise _invalid(f"{where}.{name}: Extra inputs are not permitted")


def _check_block(block: Any, where: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _invalid(f"{where}: Input should be a valid dictionary or object")
    kind = block["type"]
    if kind in _OTHER_BLOCKS:
        return
    if kind not in _BLOCK_FIELDS:
        expected = ", ".join(f"'{k}'" for k in [*_BLOCK_FIELDS, *sorted(_OTHER_BLOCKS)])
        raise _invalid(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {expected}"
        )
    _check_fields(block, _BLOCK_FIELDS[kind], f"{where}.{kind}")
    if kind == "text" and not isinstance(block.get("text"), str):
        raise _invalid(f"{where}.text.text: Field required")
    if kind == "thinking" and block.get("signature") != sign(str(block.get("thinking"))):
        raise _invalid(f"{where}: Invalid `signature` in `thinking` block")
    if kind == "tool_use":
        for name in ("id", "name", "input"):
            if name not in block:
                raise _invalid(f"{where}.tool_use.{name}: Field required")
    if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise _invalid(f"{where}.tool_result.tool_use_id: Field required")


def _blocks(message: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
    content = message["content"]
    if not isinstance(content, list):
        return []
    return [(j, b) for j, b in enumerate(content) if b["type"] == kind]


def _check_pairing(messages: list[dict[str, Any]]) -> None:
    """Tool results answer tool uses of the message just before, and all of them get one."""
    for i, message in enumerate(messages):
        results = _blocks(message, "tool_result")
        if not results:
            continue
        before = messages[i - 1] if i > 0 and messages[i - 1]["role"] == "assistant" else None
        uses = {b["id"] for _, b in _blocks(before, "tool_use")} if before else set()
        stray = [(j, b["tool_use_id"]) for j, b in results if b["tool_use_id"] not in uses]
        if stray:
            ids = ", ".join(tool_id for _, tool_id in stray)
            raise _invalid(
                f"messages.{i}.content.{stray[0][0]}: unexpected `tool_use_id` found in "
                f"`tool_result` blocks: {ids}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
    for i, message in enumerate(messages[:-1]):
        uses = _blocks(message, "tool_use")
        if message["role"] != "assistant" or not uses:
            continue
        answered = {b["tool_use_id"] for _, b in _blocks(messages[i + 1], "tool_result")}
        missing = [b["id"] for _, b in uses if b["id"] not in answered]
        if missing:
            raise _invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )


def _check_thinking_turn(body: dict[str, Any]) -> None:
    """With thinking enabled, the assistant turn being continued after tools opens with
    thinking. Not with ``adaptive`` thinking, where the model may not have thought: Claude
    Code sends such turns back without their thinking blocks."""
    messages = body["messages"]
    thinking = body.get("thinking")
    if not (isinstance(thinking, dict) and thinking.get("type") == "enabled"):
        return
    if len(messages) < 2:
        return
    last, before = messages[-1], messages[-2]
    if last["role"] != "user" or before["role"] != "assistant":
        return
    if not _blocks(last, "tool_result") or not _blocks(before, "tool_use"):
        return
    content = before["content"]
    first = content[0]["type"] if content else None
    if first not in ("thinking", "redacted_thinking"):
        i = len(messages) - 2
        raise _invalid(
            f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
            f"found `{first}`. When `thinking` is enabled, a final `assistant` message must "
            "start with a thinking block (preceeding the lastmost set of `tool_use` and "
            "`tool_result` blocks). We recommend you include thinking blocks from previous "
            "turns. To avoid this requirement, disable `thinking`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )


def _error(refusal: Refusal, headers: dict[str, str] | None = None) -> web.Response:
    request_id = _new_id("req_01")
    return web.json_response(
        {
            "type": "error",
            "error": {"type": refusal.kind, "message": refusal.message},
            "request_id": request_id,
        },
        status=refusal.status,
        headers={"request-id": request_id, **(headers or {})},
    )
