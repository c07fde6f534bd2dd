"""One :class:`Attempt`: a routed request sent upstream with one key, and its answer.

An attempt that fails before anything reached the client (no key, connection refused, no
answer within ``first_byte_timeout``, the connection lost before an answer, 429, 5xx, a
stream that broke before its first content) lets ``chain`` move on to the next key or
route; the last one's failure is what the client sees. An attempt sends its request once:
it is never repeated on another connection. Some failures are ``final`` (a redirect, a
rejected key, the client's own mistake): no other route would do better. Once content
flows to the client, nothing is retried: a failure then is an in-stream error event
(``stream.py``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from trayproxy.config.model import Config, Provider, ProviderKey
from trayproxy.core.estimate import answer_tokens
from trayproxy.core.jsonbody import loads_answer
from trayproxy.core.usage import usage_from_body
from trayproxy.gateway import provider_client, provider_errors, translate, upstream
from trayproxy.gateway.client_stream import ClientStream
from trayproxy.gateway.errors import Failure, error_message_from_body
from trayproxy.gateway.key_pool import wait_asked
from trayproxy.gateway.state import ProxyState
from trayproxy.gateway.stream import copy_headers, stream_back, within
from trayproxy.gateway.whole_answer import AnswerTooLarge, estimate_missing, read_whole
from trayproxy.protocols import messages_errors
from trayproxy.providers import dialect, stream_rewrite
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import PROVIDER_PREFIX, Route, suggest

_JSON_LIMIT_FOR_USAGE = 32 * 1024 * 1024
_ERROR_LIMIT = 1024 * 1024  # a provider's error answer is read up to this
_NOTHING_WRITTEN = ("embeddings", "rerank")  # endpoints whose answers are not text
# A 403 about the prompt, not the key (OpenRouter's moderation): passed on as it is
_REFUSED_CONTENT = re.compile(rb"moderat|flagged|content.?(?:policy|filter)|safety", re.I)
PRICE_WAIT = 5.0  # seconds a finished stream waits for its provider's price list


class Attempt:
    """One route tried for one request: the provider's request built and sent once, and its
    answer relayed (``stream.py`` for a stream) or turned into a :class:`Failure`."""

    def __init__(
        self,
        request: web.Request,
        state: ProxyState,
        config: Config,
        route: Route,
        endpoint: str,
        draft: RecordDraft,
        *,
        retried: bool,
        key: ProviderKey | None = None,
    ) -> None:
        self.request = request
        self.state = state
        self.config = config
        self.route = route
        self.endpoint = endpoint
        self.draft = draft
        self.retried = retried  # an earlier route was tried: the client must not retry
        self.provider: Provider = route.provider
        self.sent: dict[str, Any] = {}
        self.speaks_messages = endpoint == translate.MESSAGES  # the client: Anthropic's protocol
        self.plan: translate.Plan | None = None  # how a Messages or Responses request goes
        self.translation: translate.Translation | None = None  # its stream, translated
        self.key = key  # the provider key this attempt sends (None: the provider's api_key)
        self.client: ClientStream | None = None  # a streamed request's client side
        self.rate_limited = False  # answered 429: its key rests ``wait_asked`` seconds
        self.wait_asked: float | None = None
        self.rejected: str | None = None  # "401 ...": the key was refused
        self.for_model = False  # refused for this model only (a 403)

    @property
    def name(self) -> str:
        return self.provider.name

    async def run(self, body: dict[str, Any]) -> web.StreamResponse | Failure:
        provider, draft = self.provider, self.draft
        endpoint, url, forwarded, key_header = self.endpoint, None, None, "authorization"
        if self.endpoint in translate.TRANSLATED:
            try:
                plan = translate.plan(self.route, self.endpoint, body, self.request.headers)
            except translate.StatefulRequestError as exc:
                return Failure(400, str(exc), "previous_response_not_found", final=True)
            self.plan = plan
            body, endpoint, url = plan.body, plan.endpoint, plan.url
            forwarded = plan.forwarded_headers(self.request.headers)
            if not plan.translated and provider.profile.messages_auth == "x-api-key":
                key_header = "x-api-key"
            for note in plan.notes:
                if note not in draft.rewrites:
                    draft.rewrites.append(note)
        sent, exchange = dialect.prepare(
            provider.profile,
            endpoint,
            body,
            self.state.reasoning,
            max_output_tokens=self.route.max_output_tokens,
        )
        self.sent = sent  # what the provider was asked, for a token estimate
        try:
            up = upstream.build(
                self.route,
                endpoint,
                self.request.headers.items(),
                sent,
                url=url,
                forwarded=forwarded,
                key_header=key_header,
                key=self.key.ref if self.key is not None else None,
            )
        except upstream.MissingKeyError as exc:
            return Failure(502, str(exc), "provider_key_missing")
        draft.upstream_url = up.url
        for note in (*up.rewrites, *exchange.notes):
            if note not in draft.rewrites:
                draft.rewrites.append(note)
        resp = await self._send(up)
        if isinstance(resp, Failure):
            return resp
        try:
            return await self._answer(resp, exchange)
        finally:
            resp.release()  # back to the pool if the answer was read whole, else closed
            draft.rewrites.extend(exchange.answer_notes())

    async def _send(self, up: upstream.UpstreamRequest) -> aiohttp.ClientResponse | Failure:
        """The request, sent once; the answer once its status line and headers are in."""
        state, provider, name = self.state, self.provider, self.name
        session = state.session
        assert session is not None, "the app's client session is created at startup"
        proxy = state.proxy_for(up.url)
        unusable = provider_client.proxy_problem(proxy)
        if unusable is not None:
            message = f"Cannot reach provider '{name}' at {_origin(up.url)}: {unusable}"
            return Failure(502, message, "upstream_unreachable")
        try:
            return await within(
                session.post(
                    up.url,
                    data=up.body,
                    headers=up.headers,
                    proxy=proxy,
                    allow_redirects=False,
                    timeout=provider_client.timeout(provider.connect_timeout),
                ),
                provider.first_byte_timeout,
            )
        except provider_client.CLIENT_ERRORS as exc:
            reason = provider_client.unreachable_reason(exc, provider.connect_timeout)
            if reason is not None:
                message = f"Cannot reach provider '{name}' at {_origin(up.url)}: {reason}"
                return Failure(502, state.redact(message), "upstream_unreachable")
            if not provider_client.sent(exc):
                why = provider_client.unsent_reason(exc)
                message = f"Cannot send the request to provider '{name}': {why}"
                return Failure(502, state.redact(message), "upstream_error")
            why = provider_client.broken_answer_reason(exc)
            message = f"Provider '{name}' {why}. The request was sent once; it is not repeated."
            return Failure(502, state.redact(message), "upstream_error")
        except asyncio.TimeoutError:
            return Failure(
                504,
                f"Provider '{name}' did not start answering within "
                f"{provider.first_byte_timeout:g} s (first_byte_timeout).",
                "upstream_timeout",
            )

    async def _answer(
        self, resp: aiohttp.ClientResponse, exchange: dialect.Exchange
    ) -> web.StreamResponse | Failure:
        name, status, draft = self.name, resp.status, self.draft
        if status < 200:
            resp.close()
            return Failure(
                502,
                f"Provider '{name}' answered {status} {resp.reason or ''}".rstrip()
                + "; trayproxy expects an HTTP answer, not a protocol switch.",
                "upstream_error",
            )
        if 300 <= status < 400:
            where = resp.headers.get("Location", "?")
            return Failure(
                502,
                f"Provider '{name}' answered with a redirect ({status} to {where}); trayproxy "
                "does not follow redirects. Check base_url in config.toml.",
                "upstream_redirect",
                final=True,
            )
        ctype = resp.headers.get("Content-Type", "").lower()
        if status < 300 and ("event-stream" in ctype or (draft.stream and "json" not in ctype)):
            rewriter = stream_rewrite.for_exchange(exchange)
            if self.plan is not None and self.plan.translated:
                client, protocol = self.client, self.plan.protocol
                opened = client.responses if client is not None else None
                self.translation = await translate.translation(self.plan, rewriter, opened)
                if client is not None and protocol == translate.RESPONSES:
                    if opened is None:  # its start goes out with a keep-alive or the content
                        client.adopt(self.translation.stream)
                    opening = b""
                else:
                    opening = self.translation.start()
                ping = translate.PINGS[protocol]
                return await stream_back(self, resp, self.translation, opening, ping)
            return await stream_back(self, resp, rewriter)
        draft.mark_first_byte()  # a JSON answer starts with its status line and headers
        failed = status >= 400  # an error is a few lines: more is not read, redacted, parsed
        limit = _ERROR_LIMIT if failed else self.config.server.max_answer_bytes
        data: bytes | None
        try:
            data = await read_whole(resp, self.provider.idle_timeout, limit)
        except asyncio.TimeoutError:
            return Failure(
                504, f"Provider '{name}' stopped sending its answer.", "upstream_timeout"
            )
        except AnswerTooLarge:
            if not failed:
                mb = self.config.server.max_answer_mb
                return Failure(
                    502,
                    f"Provider '{name}' sent an answer larger than {mb} MiB (decompressed); "
                    "trayproxy stopped reading it. Raise [server] max_answer_mb in "
                    "config.toml if such answers are expected.",
                    "upstream_answer_too_large",
                )
            data = None
        except provider_client.CLIENT_ERRORS as exc:
            why = provider_client.broken_answer_reason(exc)
            return Failure(502, self.state.redact(f"Provider '{name}' {why}."), "upstream_error")
        if data is None or failed:
            return self._provider_error(resp, data)
        draft.status = status
        if len(data) <= _JSON_LIMIT_FOR_USAGE:
            found = usage_from_body(data)
            if found:
                draft.take_usage(found)
            answer = data
            await self.count_tokens(lambda: answer_tokens(loads_answer(answer)))
            data = exchange.rewrite_body(data)
        if self.plan is not None and self.plan.translated:
            try:
                data = await translate.answer(self.plan, data)
            except (ValueError, UnicodeDecodeError):
                return Failure(
                    502, f"Provider '{name}' answered with something that is not JSON.", None
                )
        out = web.Response(status=status, body=data)
        copy_headers(resp, out, name, self.retried)
        return out

    def failure_event(self, failure: Failure) -> bytes:
        """A failure after the stream began, as its last event in the client's protocol."""
        if self.translation is not None:
            return self.translation.error(failure.status, failure.message, failure.code)
        if self.speaks_messages:
            return messages_errors.error_event(failure.status, failure.message)
        return failure.event()

    def record_unfinished(self) -> bool:
        """Whether the record still waits for something once the client has its answer:
        token counts to estimate, or a price list being read."""
        draft = self.draft
        if draft.prompt_tokens is None or draft.completion_tokens is None:
            return True
        return draft.price is None and self.state.prices.is_reading(self.provider)

    async def finish_record(self, written: Callable[[], int]) -> None:
        """The client has its whole answer: the token counts it did not report, estimated,
        and the price of a first request, once its provider's price list is read."""
        await self.count_tokens(written)
        if self.draft.price is None:
            await self.state.prices.reading(self.provider, PRICE_WAIT)
            self.draft.price = self.state.prices.price(self.config, self.route)

    async def count_tokens(self, written: Callable[[], int]) -> None:
        """The token counts the provider did not report, estimated from the request sent and
        ``written`` (the answer's), in a worker thread (a long prompt takes milliseconds),
        and marked as estimated."""
        writes = self.endpoint not in _NOTHING_WRITTEN
        await estimate_missing(self.draft, self.sent, written if writes else None)

    def _label(self) -> str:
        several = self.key is not None and len(self.provider.keys) > 1
        return f" {self.key.label!r}" if several and self.key is not None else ""

    def _key_line(self) -> str:
        return "api_keys" if self.provider.api_keys else "api_key"

    def _provider_error(self, resp: aiohttp.ClientResponse, data: bytes | None) -> Failure:
        """A provider's error answer (status >= 400; ``data`` None when too long to read):
        401/403 as trayproxy's own key problem, 429 and 5xx as a failure the next route may
        answer, other 4xx passed on. ``provider_errors`` words the body."""
        state, name, status, draft = self.state, self.name, resp.status, self.draft
        refused_content = status == 403 and _REFUSED_CONTENT.search(data or b"") is not None
        if status in (401, 403) and not refused_content:  # not the prompt: the key
            detail = state.redact(error_message_from_body(data or b""))
            self.rejected = f"{status} {detail}"[:160]
            self.for_model = status == 403  # a model this key may not use: the others may
            draft.error_body = state.redact((data or b"")[:4096].decode("utf-8", "replace"))
            return Failure(
                502,
                f"Provider '{name}' rejected trayproxy's key{self._label()} for it ({status}: "
                f"{detail}). Check {self._key_line()} under [providers.{name}] in config.toml; "
                "your editor's key is not used.",
                "upstream_auth_failed",
                final=True,
            )
        final = not (status == 429 or status >= 500)  # a fallback may do better than these
        if data is None:
            said = provider_errors.too_long(status, name, _ERROR_LIMIT)
        else:
            data = state.redact_bytes(data)
            if final:  # else the record keeps it only if no later route answers
                draft.error_body = data[:4096].decode("utf-8", "replace")
            by_prefix = self.route.rule == PROVIDER_PREFIX
            said = provider_errors.explain(
                status,
                data,
                resp.headers.get("Content-Type", ""),
                provider=name,
                endpoint=self.endpoint,
                client_model=self.route.client_model,
                upstream_model=self.route.upstream_model,
                by_prefix=by_prefix,
                suggestions=suggest(self.config, self.route.client_model) if by_prefix else [],
            )
        headers = dict(upstream.response_headers(resp.headers.items()))
        headers.pop("Content-Type", None)
        headers["x-trayproxy-provider"] = name
        if status == 429:
            self.rate_limited = True
            self.wait_asked = wait_asked(resp.headers, data)
        return Failure(
            status,
            said.message,
            said.code or f"upstream_{status}",
            headers=headers,
            body=said.body,
            final=final,
        )


def _origin(url: str) -> str:
    return "/".join(url.split("/", 3)[:3])
