"""Anthropic Messages requests (Claude Code's ``POST /v1/messages``) on their way to a
provider: passed through to one that speaks Messages itself (the model renamed and the key
injected, nothing else touched), or translated to Chat Completions for one that does not
(``protocols``), with the answer translated back, streamed or whole. ``count_tokens`` is
answered with an estimate where the provider cannot count."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trayproxy.core.estimate import request_tokens
from trayproxy.core.jsonbody import dumps, loads_answer
from trayproxy.protocols import messages_stream
from trayproxy.protocols.messages_answer import from_chat
from trayproxy.protocols.messages_request import to_chat
from trayproxy.protocols.messages_stream import MessagesStream
from trayproxy.providers import profiles
from trayproxy.providers.chat import CHAT
from trayproxy.providers.stream_rewrite import StreamRewriter
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import Route

# Anthropic's own headers: passed to a provider that speaks Messages, named in the record
# when a translation leaves them behind.
ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")
PING = messages_stream.PING  # what a translated stream sends while the provider is silent


@dataclass
class Plan:
    """How one attempt sends a Messages request to its route's provider."""

    body: dict[str, Any]  # what the provider's dialect fixes then see
    endpoint: str  # "messages" (natively) or "chat/completions" (translated)
    native_base: str | None  # the provider's Messages base URL, when it speaks Messages
    client_model: str
    stop_sequences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    input_tokens: asyncio.Task[int] | None = None  # the prompt's estimate, being computed

    @property
    def translated(self) -> bool:
        return self.native_base is None

    @property
    def url(self) -> str | None:
        return None if self.native_base is None else self.native_base + "/messages"

    def forwarded_headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        """The client's Anthropic headers a native provider gets."""
        if self.translated:
            return {}
        return {h: client_headers[h] for h in ANTHROPIC_HEADERS if h in client_headers}

    async def estimated_input(self) -> int:
        if self.input_tokens is None:
            return 0
        return await self.input_tokens


def plan(route: Route, body: dict[str, Any], client_headers: Mapping[str, str]) -> Plan:
    provider = route.provider
    stops = body.get("stop_sequences")
    stops = [s for s in stops if isinstance(s, str)] if isinstance(stops, list) else []
    client_model = str(body.get("model"))
    native = profiles.messages_url(provider.profile, provider.base_url)
    if native is not None:
        note = "Anthropic Messages passed through (the provider speaks it)"
        return Plan(body, "messages", native, client_model, stops, [note])
    translated = to_chat(body, reasoning=provider.profile.reasoning_request)
    notes = translated.notes
    beta = client_headers.get("anthropic-beta")
    if beta:
        notes.append("anthropic-beta not sent: " + ", ".join(b.strip() for b in beta.split(",")))
    out = Plan(translated.body, CHAT, None, client_model, stops, notes)
    # the prompt's size for message_start, counted while the provider thinks
    out.input_tokens = asyncio.create_task(asyncio.to_thread(request_tokens, translated.body))
    return out


class Translation:
    """The provider's Chat stream, its dialect fixed (``first``), as a Messages stream."""

    def __init__(self, first: StreamRewriter | None, stream: MessagesStream) -> None:
        self.first = first
        self.stream = stream

    def start(self) -> bytes:
        return self.stream.start()

    def feed(self, chunk: bytes) -> bytes:
        return self.stream.feed(self.first.feed(chunk) if self.first else chunk)

    def finish(self) -> bytes:
        held = self.first.finish() if self.first else b""
        return (self.stream.feed(held) if held else b"") + self.stream.finish()


async def translation(p: Plan, first: StreamRewriter | None) -> Translation:
    stream = MessagesStream(
        model=p.client_model,
        input_tokens=max(await p.estimated_input(), 1),
        stop_sequences=p.stop_sequences,
    )
    return Translation(first, stream)


async def answer(p: Plan, data: bytes) -> bytes:
    """A whole Chat answer as an Anthropic message."""
    message = from_chat(
        loads_answer(data),
        model=p.client_model,
        stop_sequences=p.stop_sequences,
        estimated_input=await p.estimated_input(),
    )
    return dumps(message)


async def count_tokens(
    routes: list[Route], body: dict[str, Any], draft: RecordDraft
) -> web.Response:
    """``POST /v1/messages/count_tokens``: the prompt's tokens as the first route's provider
    would see it, estimated (Claude Code asks often; providers behind a translation have no
    such endpoint). Never a 404."""
    route = routes[0]
    provider = route.provider
    draft.provider, draft.upstream_model = provider.name, route.upstream_model
    if profiles.messages_url(provider.profile, provider.base_url) is None:
        translated = to_chat(body, reasoning=provider.profile.reasoning_request).body
    else:
        translated = body
    n = await asyncio.to_thread(request_tokens, translated)
    draft.status = 200
    # the count is the answer, not tokens used: kept out of the usage figures
    draft.rewrites.append(f"counted by trayproxy: about {n} input tokens (an estimate)")
    return web.json_response({"input_tokens": n})
