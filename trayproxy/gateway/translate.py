"""Requests in a protocol other than Chat Completions on their way to a provider: Anthropic
Messages (Claude Code's ``POST /v1/messages``) and the Responses API (Codex's ``POST
/v1/responses``). Passed through to a provider that speaks the protocol itself (the model
renamed and the key injected, nothing else touched), or translated to Chat Completions for one
that does not (``protocols``), with the answer translated back, streamed or whole.
``count_tokens`` is answered with an estimate where the provider cannot count."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from trayproxy.core.estimate import request_tokens
from trayproxy.core.jsonbody import dumps, loads_answer
from trayproxy.protocols import (
    messages_answer,
    messages_request,
    messages_stream,
    responses_answer,
    responses_request,
    responses_stream,
)
from trayproxy.providers import profiles
from trayproxy.providers.chat import CHAT
from trayproxy.providers.stream_rewrite import StreamRewriter
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import Route

MESSAGES = messages_request.MESSAGES
RESPONSES = responses_request.RESPONSES
TRANSLATED = (MESSAGES, RESPONSES)
# Anthropic's own headers: passed to a provider that speaks Messages, named in the record
# when a translation leaves them behind.
ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")
# what a translated stream sends while the provider is silent
PINGS = {MESSAGES: messages_stream.PING, RESPONSES: b": keep-alive\n\n"}
StatefulRequestError = responses_request.StatefulRequestError


class Stream(Protocol):
    """A translated stream: what the relay writes first, per chunk, at the end, on failure."""

    def start(self) -> bytes: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, status: int, message: str, code: str | None = None) -> bytes: ...

    @property
    def ended(self) -> bool: ...

    @property
    def failed(self) -> bool: ...


@dataclass
class Plan:
    """How one attempt sends a Messages or Responses request to its route's provider."""

    protocol: str  # the client's: "messages" or "responses"
    body: dict[str, Any]  # what the provider's dialect fixes then see
    endpoint: str  # the protocol itself (natively), or "chat/completions" (translated)
    native_base: str | None  # where the provider serves the protocol, when it does
    client_model: str
    stop_sequences: list[str] = field(default_factory=list)
    custom_tools: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)
    input_tokens: asyncio.Task[int] | None = None  # the prompt's estimate, being computed

    @property
    def translated(self) -> bool:
        return self.native_base is None

    @property
    def url(self) -> str | None:
        return None if self.native_base is None else f"{self.native_base}/{self.protocol}"

    def forwarded_headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        """The client's Anthropic headers a provider that speaks Messages gets."""
        if self.translated or self.protocol != MESSAGES:
            return {}
        return {h: client_headers[h] for h in ANTHROPIC_HEADERS if h in client_headers}

    async def estimated_input(self) -> int:
        return 0 if self.input_tokens is None else await self.input_tokens


def native_base(route: Route, protocol: str) -> str | None:
    provider = route.provider
    base = (
        provider.profile.messages_base if protocol == MESSAGES else provider.profile.responses_base
    )
    return profiles.expand_base(base, provider.base_url)


def plan(
    route: Route, protocol: str, body: dict[str, Any], client_headers: Mapping[str, str]
) -> Plan:
    """Raises :class:`StatefulRequestError` for a Responses request that needs stored state."""
    client_model = str(body.get("model"))
    native = native_base(route, protocol)
    if native is not None:
        name = "Anthropic Messages" if protocol == MESSAGES else "Responses API"
        notes = [f"{name} passed through (the provider speaks it)"]
        body = _for_native(body, protocol, route.max_output_tokens, notes)
        return Plan(protocol, body, protocol, native, client_model, notes=notes)
    profile = route.provider.profile
    reasoning, usage = profile.reasoning_request, profile.include_usage
    if protocol == MESSAGES:
        translated = messages_request.to_chat(body, reasoning=reasoning, include_usage=usage)
        stops = body.get("stop_sequences")
        stops = [s for s in stops if isinstance(s, str)] if isinstance(stops, list) else []
        out = Plan(
            protocol, translated.body, CHAT, None, client_model, stops, notes=translated.notes
        )
        beta = client_headers.get("anthropic-beta")
        if beta:
            dropped = ", ".join(b.strip() for b in beta.split(","))
            out.notes.append("anthropic-beta not sent: " + dropped)
    else:
        answer = responses_request.to_chat(body, reasoning=reasoning, include_usage=usage)
        out = Plan(protocol, answer.body, CHAT, None, client_model, notes=answer.notes)
        out.custom_tools = answer.custom_tools
    # the prompt's size for the stream's first events, counted while the provider thinks
    out.input_tokens = asyncio.create_task(asyncio.to_thread(request_tokens, out.body))
    return out


def _for_native(
    body: dict[str, Any], protocol: str, cap: int | None, notes: list[str]
) -> dict[str, Any]:
    """A passed-through body, changed in two ways only: its output tokens clamped to the
    mapping's ``max_output_tokens``, and (Messages) thinking blocks that trayproxy signed
    when it translated an earlier turn removed, since the provider would refuse their
    signatures (a conversation that moved from a translated provider to this one)."""
    key = "max_tokens" if protocol == MESSAGES else "max_output_tokens"
    value = body.get(key)
    out = body
    if cap and isinstance(value, int) and not isinstance(value, bool) and value > cap:
        out = {**body, key: cap}
        notes.append(f"{key} {value} → {cap} (the model's max_output_tokens)")
    if protocol != MESSAGES or messages_answer.SIGNATURE_MARK.encode() not in dumps(body):
        return out
    removed = 0
    messages = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            kept = [b for b in content if not _ours(b)]
            removed += len(content) - len(kept)
            message = {**message, "content": kept}
        messages.append(message)
    if removed:
        notes.append(f"thinking blocks from a translated turn removed ({removed})")
        out = {**out, "messages": messages}
    return out


def _ours(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "thinking"
        and str(block.get("signature", "")).startswith(messages_answer.SIGNATURE_MARK)
    )


class Translation:
    """The provider's Chat stream, its dialect fixed (``first``), in the client's protocol."""

    def __init__(self, first: StreamRewriter | None, stream: Stream) -> None:
        self.first = first
        self.stream = stream

    def start(self) -> bytes:
        return self.stream.start()

    def feed(self, chunk: bytes) -> bytes:
        return self.stream.feed(self.first.feed(chunk) if self.first else chunk)

    def finish(self) -> bytes:
        held = self.first.finish() if self.first else b""
        return (self.stream.feed(held) if held else b"") + self.stream.finish()

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        return self.stream.error(status, message, code)

    @property
    def unfinished(self) -> bool:
        """After ``finish``: the client's stream got neither its end nor an error."""
        return not (self.stream.ended or self.stream.failed)


async def translation(
    p: Plan,
    first: StreamRewriter | None,
    opened: responses_stream.ResponsesStream | None = None,
) -> Translation:
    """The stream translation for ``p``; ``opened``: the Responses stream the client was
    already sent the start of (while keeping it alive), which this one goes on with."""
    input_tokens = max(await p.estimated_input(), 1)
    stream: Stream
    if opened is not None and p.protocol == RESPONSES:
        opened.input_tokens, opened.custom_tools = input_tokens, p.custom_tools
        return Translation(first, opened)
    if p.protocol == MESSAGES:
        stream = messages_stream.MessagesStream(
            model=p.client_model, input_tokens=input_tokens, stop_sequences=p.stop_sequences
        )
    else:
        stream = responses_stream.ResponsesStream(
            model=p.client_model, input_tokens=input_tokens, custom_tools=p.custom_tools
        )
    return Translation(first, stream)


async def answer(p: Plan, data: bytes) -> bytes:
    """A whole Chat answer in the client's protocol."""
    chat = loads_answer(data)
    estimated = await p.estimated_input()
    if p.protocol == MESSAGES:
        message = messages_answer.from_chat(
            chat, model=p.client_model, stop_sequences=p.stop_sequences, estimated_input=estimated
        )
        return dumps(message)
    response = responses_answer.from_chat(
        chat, model=p.client_model, custom_tools=p.custom_tools, estimated_input=estimated
    )
    return dumps(response)


async def count_tokens(
    routes: list[Route], body: dict[str, Any], draft: RecordDraft
) -> web.Response:
    """``POST /v1/messages/count_tokens``: the prompt's tokens as the first route's provider
    would see it, estimated (Claude Code asks often; providers behind a translation have no
    such endpoint). Never a 404."""
    route = routes[0]
    provider = route.provider
    draft.provider, draft.upstream_model = provider.name, route.upstream_model
    if native_base(route, MESSAGES) is None:
        reasoning = provider.profile.reasoning_request
        counted = messages_request.to_chat(body, reasoning=reasoning).body
    else:
        counted = body
    n = await asyncio.to_thread(request_tokens, counted)
    draft.status = 200
    # the count is the answer, not tokens used: kept out of the usage figures
    draft.rewrites.append(f"counted by trayproxy: about {n} input tokens (an estimate)")
    return web.json_response({"input_tokens": n})
