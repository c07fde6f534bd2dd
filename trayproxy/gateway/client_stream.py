"""The client's side of a streamed request while routes and keys are tried.

Until the first content event a stream is not committed to any route: what a provider
sent before it (a role chunk, a translation's opening) is held, and a route that fails
then gives way to the next key or fallback. Meanwhile, when the provider is silent for the
provider's ``keepalive_seconds``, the client's response is opened (200, event stream) and
an SSE comment is written every so often, so that a client with an idle timeout does not
hang up on a model that thinks for minutes. A comment is the keep-alive every SSE reader
ignores, whatever its protocol (Anthropic's ``ping`` before ``message_start`` breaks the
anthropic SDK). But Codex's idle timer counts events, not bytes: a Responses client whose
request is translated gets trayproxy's ``response.created`` and ``response.in_progress`` and
then the API's own ``keepalive`` events, and the translation goes on with that stream. A
failure after the response opened reaches the client as its protocol's error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from trayproxy.gateway.errors import Failure
from trayproxy.protocols import messages_errors, responses_stream
from trayproxy.protocols.messages_request import MESSAGES
from trayproxy.records.logbook import RecordDraft

if TYPE_CHECKING:  # the state holds what imports this module
    from trayproxy.gateway.state import ProxyState

KEEPALIVE = b": keep-alive\n\n"
HELD_LIMIT = 256 * 1024  # held this much without content: committed anyway

# What makes an event content, in the provider's stream (Chat, Messages or Responses): a
# piece of text, reasoning or a tool call, or the end. A role chunk, ``message_start`` or
# ``response.created`` is not.
_CONTENT = re.compile(
    rb'"(?:content|reasoning_content|reasoning|text|thinking|partial_json)"\s*:\s*"(?!")'
    rb'|"tool_calls"\s*:\s*\[\s*\{|"finish_reason"\s*:\s*"'
    rb"|content_block_start|message_delta|response\.(?:output_item\.added|completed|failed"
    rb"|incomplete)|^data: ?\[DONE\]",
    re.MULTILINE,
)


def has_content(chunk: bytes) -> bool:
    return _CONTENT.search(chunk) is not None


class ClientStream:
    """One streamed request's answer, opened only when it must be (see the module)."""

    def __init__(
        self, request: web.Request, state: ProxyState, draft: RecordDraft, endpoint: str
    ) -> None:
        self.request = request
        self.state = state
        self.draft = draft
        self.endpoint = endpoint
        self.out: web.StreamResponse | None = None
        self.committed = False  # content written: no other route may answer now
        self.provider = ""  # the route being tried, for the header and the pings
        self._every = 0.0
        self._own_events = False  # keep-alive as Responses events (a translated route)
        # the Responses stream the client is sent (its start with the first keep-alive or
        # the content, ``_opening`` until then), which the translation goes on with
        self.responses: responses_stream.ResponsesStream | None = None
        self._opening = b""
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._task = asyncio.current_task()

    # ------------------------------------------------------------ keep-alive

    def trying(self, provider: str, every: float, own_events: bool = False) -> None:
        """A route (or key) is being tried: keep-alive after ``every`` s of silence
        (``own_events``: as Responses events, for a Responses request it translates)."""
        self.provider = provider
        self._every = every
        if not own_events and self.out is None:  # a route that speaks Responses itself
            self.responses, self._opening = None, b""
        self._own_events = own_events or self.responses is not None
        if not self.committed:
            self._arm()

    def adopt(self, stream: responses_stream.ResponsesStream) -> None:
        """A translated Responses stream, whose start is sent with the first keep-alive or
        with the content, whichever comes first (numbered now, before its other events)."""
        self.responses = stream
        self._opening = stream.start()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        if self._every > 0 and not self.committed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._every, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.committed or (self._writing is not None and not self._writing.done()):
            return
        self._writing = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            out = await self.open()
            if not self._own_events:
                await out.write(KEEPALIVE)
            else:
                if self.responses is None:
                    self.adopt(
                        responses_stream.ResponsesStream(
                            model=self.draft.client_model or "", input_tokens=0
                        )
                    )
                assert self.responses is not None
                opening, self._opening = self._opening, b""
                await out.write(opening + self.responses.keepalive())
        except ConnectionError:  # the client hung up while the provider thinks: stop both
            if self._task is not None and not self._task.done():
                self._task.cancel()
            return
        self._arm()

    async def quiet(self) -> None:
        """No more keep-alives (a ping being written is finished first)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writing, self._writing = self._writing, None
        if writing is not None and not writing.done():
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                if not writing.cancelled():  # this task's own cancellation: pass it on
                    raise

    # ------------------------------------------------------------ the response

    async def open(
        self, headers: list[tuple[str, str]] | None = None, retried: bool = False
    ) -> web.StreamResponse:
        """The client's response, sent now if not yet (200, an event stream)."""
        if self.out is not None:
            return self.out
        out = web.StreamResponse(status=200)
        for key, value in headers or ():
            out.headers.add(key, value)
        if "Content-Type" not in out.headers:
            out.headers["Content-Type"] = "text/event-stream"
        out.headers["Cache-Control"] = "no-cache"
        out.headers["X-Accel-Buffering"] = "no"
        out.headers["x-trayproxy-provider"] = self.provider
        if retried:
            out.headers["x-should-retry"] = "false"
        self.out = out
        self.draft.status = 200
        # so that a shutdown can end it with an error event in the client's protocol
        self.state.streams[out] = (self.draft, self.failure_event)
        await out.prepare(self.request)
        return out

    async def commit(
        self,
        held: bytes,
        headers: list[tuple[str, str]],
        retried: bool,
        failure_event: Callable[[Failure], bytes],
    ) -> web.StreamResponse:
        """The first content: from now on this route answers (a failure is said by
        ``failure_event``). Writes what was held."""
        await self.quiet()
        self.committed = True
        self.draft.ttfb_ms = None  # the client's first event is now (a held one came earlier)
        self.draft.mark_first_byte()
        out = await self.open(headers, retried)
        self.state.streams[out] = (self.draft, failure_event)
        opening, self._opening = self._opening, b""
        if opening or held:
            await out.write(opening + held)
        return out

    def failure_event(self, failure: Failure) -> bytes:
        """A failure before any content, as the client's protocol ends a stream with one."""
        if self.endpoint == MESSAGES:
            return messages_errors.error_event(failure.status, failure.message)
        if self.responses is not None:  # the stream the client was (or is to be) sent
            opening, self._opening = self._opening, b""
            return opening + self.responses.error(failure.status, failure.message, failure.code)
        if self.endpoint == "responses":
            stream = responses_stream.ResponsesStream(
                model=self.draft.client_model or "", input_tokens=0
            )
            return stream.start() + stream.error(failure.status, failure.message, failure.code)
        return failure.event()

    async def fail(self, failure: Failure) -> web.StreamResponse:
        """End the opened stream with ``failure`` (no route answered)."""
        await self.quiet()
        assert self.out is not None
        with contextlib.suppress(ConnectionError):
            await self.out.write(self.failure_event(failure))
            await self.out.write_eof()
        return self.out

    def __enter__(self) -> ClientStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.out is not None:
            self.state.streams.pop(self.out, None)
