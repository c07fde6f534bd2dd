"""Keep-alive while a model thinks, end to end: real clients with a read timeout shorter than
the provider's silence, in each protocol trayproxy serves (Chat Completions, Anthropic
Messages and the Responses API, the last two translated to a Chat-only provider), against
tests/keyed_upstream.py's ``think-S`` (a role chunk, then S s of silence), ``slow-H`` (no
status line for H s) and ``dies-S`` (a role chunk, S s of silence, then the connection closes
without content).

With ``keepalive_seconds`` the client hears ``: keep-alive`` comments while the provider is
silent (a Responses client: ``response.created``, ``response.in_progress`` and then
``keepalive`` events, since Codex's idle clock counts events only) and gets the whole answer;
without, its read timeout fires. Until the first content a failing route still gives way to a
fallback, and the client gets one valid stream; with no fallback left the failure arrives
in-stream, in the client's protocol. Raw streams are held to
tests/anthropic_grammar.py and tests/responses_grammar.py. Last, the real Claude Code and Codex
CLIs with their own idle timers.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests import anthropic_grammar, responses_grammar
from tests.codex_cli import CODEX, exec_command
from tests.keyed_upstream import REASONING, KeyedUpstream
from trayproxy.clients import claude_code
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

KEY = "sk-keepalive-7Hq2Lx9Vb4"
CLIENT_KEY = "client-key-not-forwarded"
KEEPALIVE = b": keep-alive\n\n"
THOUGHT = "".join(REASONING)
READ_TIMEOUT = 1.5  # the clients' read timeout: shorter than every silence below
EVERY = 0.5  # keepalive_seconds of the patient provider
PROTOCOLS = ("chat", "messages", "responses")
CLAUDE = Path(__file__).parent / "claude" / "node_modules" / ".bin" / "claude"
CLAUDE_EVERY = 2  # keepalive_seconds for Claude Code
CODEX_EVERY = 1

pytestmark = pytest.mark.timeout(60)


def config_text(base_url: str) -> str:
    def provider(name: str, keepalive: float, extra: str = "") -> str:
        return (
            f'[providers.{name}]\nbase_url = "{base_url}"\napi_key = "{KEY}"\n'
            f"keepalive_seconds = {keepalive}\n{extra}\n"
        )

    return (
        '[server]\nhost = "127.0.0.1"\nport = 0\n\n'
        + provider("patient", EVERY)  # keep-alives every 0.5 s
        + provider("mute", 0)  # none: the control
        + provider("hasty", 0.3, "first_byte_timeout = 1\n")  # gives up on a slow provider
        + provider("claude", CLAUDE_EVERY)  # for the CLIs: their idle timers are coarser
        + provider("codex", CODEX_EVERY)
        + """
[models."dies/then-fine"]
provider = "patient"
model = "dies-2"
fallbacks = ["patient/fine"]

[models."slow/then-fine"]
provider = "hasty"
model = "slow-3"
fallbacks = ["patient/fine"]

[models."codex/thinker"]
provider = "codex"
model = "think-6"
"""
    )


@dataclass
class Gateway:
    fake: KeyedUpstream
    server: ProxyServer
    config_file: Path
    after: int = 0  # the id of the last record before this test

    def begin(self) -> Gateway:
        self.fake.clear()
        newest = self.server.logbook.recent(1)
        self.after = newest[0].id if newest else 0
        return self

    def record(self, model: str, timeout: float = 5.0) -> dict[str, Any]:
        """The record of this test's request for ``model`` (a client that timed out leaves
        a request behind that is filed later)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.server.logbook.recent():
                if rec.id > self.after and rec.client_model == model:
                    return rec.to_dict()
            time.sleep(0.01)
        raise AssertionError(f"no record for {model}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with pytest.MonkeyPatch.context() as patch:  # module scope: before conftest's own
        patch.setenv("TRAYPROXY_HOME", str(tmp_path_factory.mktemp("trayproxy-home")))
        patch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        fake = KeyedUpstream({KEY: "ok"}).start()
        config_file = tmp_path_factory.mktemp("config") / "config.toml"
        config_file.write_text(config_text(fake.base_url))
        server = ProxyServer(parse(config_file.read_text(), file=str(config_file)))
        server.start()
        try:
            yield Gateway(fake, server, config_file)
        finally:
            server.stop(grace=1)
            fake.stop()


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    return gateway.begin()


# ---------------------------------------------------------------- a client's raw bytes


@dataclass
class Wire:
    """What reached the client, chunk by chunk, as the SDK read it."""

    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    sent_at: float = 0.0

    @property
    def raw(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)

    def longest_silence(self) -> float:
        """The longest wait for a byte, from the request on."""
        times = [self.sent_at] + [at for at, _ in self.chunks]
        return max(b - a for a, b in itertools.pairwise(times))


class _Recorded(httpx2.SyncByteStream):
    def __init__(self, stream: httpx2.SyncByteStream, wire: Wire) -> None:
        self._stream = stream
        self._wire = wire

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._wire.chunks.append((time.monotonic(), chunk))
            yield chunk

    def close(self) -> None:
        self._stream.close()


class Tee(httpx2.BaseTransport):
    """An HTTP transport that keeps a copy of every response body the client reads; the
    client's timeouts apply as usual (they travel with each request)."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()
        self.wire = Wire()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.wire = Wire(sent_at=time.monotonic())
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Recorded(response.stream, self.wire),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


TIMEOUT = httpx2.Timeout(connect=5, read=READ_TIMEOUT, write=5, pool=5)


@dataclass
class Answer:
    """What a client made of a stream: its text and reasoning, the stream's final state by the
    protocol's grammar (a Chat stream's events; a Messages message; a Responses response)."""

    text: str
    reasoning: str
    final: Any


def _openai(gw: Gateway, tee: Tee) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.server.base_url,
        api_key=CLIENT_KEY,
        timeout=TIMEOUT,
        max_retries=0,
        http_client=httpx2.Client(transport=tee),
    )


def chat_stream(gw: Gateway, model: str, tee: Tee) -> Answer:
    """The openai SDK, streaming a chat completion."""
    text, reasoning = [], []
    with _openai(gw, tee) as client:
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                extra = choice.delta.model_extra or {}
                reasoning.append(extra.get("reasoning_content") or "")
    return Answer("".join(text), "".join(reasoning), chat_grammar(tee.wire.raw))


def messages_stream(gw: Gateway, model: str, tee: Tee) -> Answer:
    """The anthropic SDK, streaming a message (to a Chat provider: translated)."""
    with (
        anthropic.Anthropic(
            base_url=gw.server.root_url,
            api_key=CLIENT_KEY,
            timeout=TIMEOUT,
            max_retries=0,
            http_client=httpx2.Client(transport=tee),
        ) as client,
        client.messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        message = stream.get_final_message()
    text = "".join(b.text for b in message.content if b.type == "text")
    reasoning = "".join(b.thinking for b in message.content if b.type == "thinking")
    final = anthropic_grammar.validate(anthropic_grammar.parse_sse(tee.wire.raw))
    return Answer(text, reasoning, final)


def responses_stream(gw: Gateway, model: str, tee: Tee) -> Answer:
    """The openai SDK, streaming a response (to a Chat provider: translated)."""
    text, reasoning = [], []
    with _openai(gw, tee) as client:
        for event in client.responses.create(model=model, input="hi", stream=True):
            if event.type == "response.output_text.delta":
                text.append(event.delta)
            elif event.type in (
                "response.reasoning_text.delta",
                "response.reasoning_summary_text.delta",
            ):
                reasoning.append(event.delta)
    final = responses_grammar.validate(responses_grammar.parse_sse(tee.wire.raw))
    return Answer("".join(text), "".join(reasoning), final)


CLIENTS = {"chat": chat_stream, "messages": messages_stream, "responses": responses_stream}
TIMEOUTS = {
    "chat": openai.APITimeoutError,
    "messages": anthropic.APITimeoutError,
    "responses": openai.APITimeoutError,
}


def chat_grammar(raw: bytes) -> list[Any]:
    """A Chat Completions stream: comments, ``data: {json}`` events, ``data: [DONE]`` last."""
    events: list[Any] = []
    for block in raw.decode().split("\n\n")[:-1]:
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        data = lines[0][len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    assert raw.endswith(b"\n\n"), raw[-200:]
    assert "[DONE]" not in events[:-1], events
    return events


def leading_keepalives(raw: bytes) -> int:
    """How many keep-alive comments come before the stream's first event."""
    count = 0
    while raw.startswith(KEEPALIVE):
        raw = raw[len(KEEPALIVE) :]
        count += 1
    return count


def heartbeats(raw: bytes, protocol: str) -> tuple[int, int]:
    """The keep-alives a client heard before its answer began, and after it: comments, or
    for a Responses client (whose idle clock counts events) ``keepalive`` events after
    trayproxy's ``response.created`` and ``response.in_progress``."""
    if protocol != "responses":
        first = leading_keepalives(raw)
        return first, raw[first * len(KEEPALIVE) :].count(KEEPALIVE)
    assert not raw.startswith(b":"), raw[:200]
    kinds = [e["type"] for e in responses_grammar.parse_sse(raw)]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    first = 0
    while 2 + first < len(kinds) and kinds[2 + first] == "keepalive":
        first += 1
    return first, kinds[2 + first :].count("keepalive")


# ---------------------------------------------------------------- a silent provider


@pytest.mark.parametrize("model", ["think-3", "slow-3"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keepalives_carry_a_client_through_a_silent_provider(
    gw: Gateway, protocol: str, model: str
) -> None:
    """think-3: headers and a role chunk at once (held), 3 s of silence; slow-3: no status
    line for 3 s. The client reads with a 1.5 s timeout."""
    tee = Tee()
    answer = CLIENTS[protocol](gw, f"patient/{model}", tee)
    assert answer.text == f"hello from {model}"
    assert answer.reasoning == (THOUGHT if model.startswith("think") else "")
    if protocol == "chat":
        assert answer.final[-1] == "[DONE]"
    # keep-alives from 0.5 s on, and the client never waited as long as its read timeout
    assert heartbeats(tee.wire.raw, protocol)[0] >= 4, tee.wire.raw[:300]
    assert tee.wire.longest_silence() < 1.0
    rec = gw.record(f"patient/{model}")
    assert (rec["status"], rec["provider"], rec["error"]) == (200, "patient", None)
    assert gw.fake.count(model=model) == 1


@pytest.mark.parametrize("model", ["think-3", "slow-3"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_without_keepalives_the_client_s_read_timeout_fires(
    gw: Gateway, protocol: str, model: str
) -> None:
    """The control: the same, from a provider with ``keepalive_seconds = 0``."""
    tee = Tee()
    started = time.monotonic()
    with pytest.raises(TIMEOUTS[protocol]):
        CLIENTS[protocol](gw, f"mute/{model}", tee)
    assert time.monotonic() - started < 2.5  # its read timeout, not the provider's answer
    assert tee.wire.raw == b""


# ---------------------------------------------------------------- fallbacks until content


@pytest.mark.parametrize(
    ("model", "primary", "why"),
    [
        # a role chunk, 2 s of silence, then the connection closes without content
        ("dies/then-fine", ("patient", "dies-2", 502), "broke off its answer"),
        # no status line within first_byte_timeout = 1 s
        ("slow/then-fine", ("hasty", "slow-3", 504), "(first_byte_timeout)"),
    ],
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_route_failing_after_keepalives_still_gives_way_to_its_fallback(
    gw: Gateway, protocol: str, model: str, primary: tuple[str, str, int], why: str
) -> None:
    tee = Tee()
    answer = CLIENTS[protocol](gw, model, tee)
    assert answer.text == "hello from fine" and answer.reasoning == ""
    raw = tee.wire.raw
    before, after = heartbeats(raw, protocol)
    assert before >= 2 and after == 0, raw[:300]
    # one stream: nothing of the primary's reached the client (the grammars check the rest)
    if protocol == "chat":
        starts = [
            e for e in answer.final[:-1] if e["choices"] and "role" in e["choices"][0]["delta"]
        ]
        assert len(starts) == 1 and {e["model"] for e in answer.final[:-1]} == {"fine"}
    rec = gw.record(model)
    assert (rec["status"], rec["error"], rec["upstream_model"]) == (200, None, "fine")
    tried = [(a["provider"], a["model"], a["status"]) for a in rec["attempts"]]
    assert tried == [primary, ("patient", "fine", 200)]
    assert why in rec["attempts"][0]["error"]
    assert [r.model for r in gw.fake.requests] == [primary[1], "fine"]


# ---------------------------------------------------------------- no fallback left


FAILURES = [
    ("patient/dies-1.5", 502, "Provider 'patient' broke off its answer"),
    ("hasty/slow-3", 504, "Provider 'hasty' did not start answering within 1 s"),
]


@pytest.mark.parametrize(("model", "status", "message"), FAILURES)
def test_chat_client_gets_the_failure_in_stream(
    gw: Gateway, model: str, status: int, message: str
) -> None:
    tee = Tee()
    with pytest.raises(openai.APIError) as raised:
        chat_stream(gw, model, tee)
    assert not isinstance(raised.value, openai.APIStatusError)  # the status was 200
    assert raised.value.message.startswith(message)
    raw = tee.wire.raw
    assert leading_keepalives(raw) >= 2, raw[:300]
    events = chat_grammar(raw)
    assert len(events) == 1 and events[0]["error"]["message"].startswith(message), events
    assert_failure_recorded(gw, model, status, message)


@pytest.mark.parametrize(("model", "status", "message"), FAILURES)
def test_messages_client_gets_the_failure_in_stream(
    gw: Gateway, model: str, status: int, message: str
) -> None:
    tee = Tee()
    with pytest.raises(anthropic.APIStatusError) as raised:
        messages_stream(gw, model, tee)
    assert raised.value.message.startswith(message)
    raw = tee.wire.raw
    assert leading_keepalives(raw) >= 2, raw[:300]
    events = anthropic_grammar.parse_sse(raw)
    assert [name for name, _ in events] == ["error"]  # the stream never began: no message
    final = anthropic_grammar.validate(events)
    assert final["error"]["type"] == "api_error"
    assert final["error"]["message"].startswith(message)
    assert_failure_recorded(gw, model, status, message)


@pytest.mark.parametrize(("model", "status", "message"), FAILURES)
def test_responses_client_gets_the_failure_in_stream(
    gw: Gateway, model: str, status: int, message: str
) -> None:
    tee = Tee()
    answer = responses_stream(gw, model, tee)  # the SDK hands the failed event over
    assert answer.text == "" and answer.final["status"] == "failed"
    assert answer.final["error"]["code"] == (
        "upstream_timeout" if status == 504 else "upstream_error"
    )
    assert answer.final["error"]["message"].startswith(message)
    raw = tee.wire.raw
    before, after = heartbeats(raw, "responses")
    assert before >= 2 and after == 0, raw[:300]
    kinds = [e["type"] for e in responses_grammar.parse_sse(raw)]
    assert kinds == ["response.created", "response.in_progress"] + ["keepalive"] * before + [
        "response.failed"
    ]
    assert_failure_recorded(gw, model, status, message)


def assert_failure_recorded(gw: Gateway, model: str, status: int, message: str) -> None:
    rec = gw.record(model)
    assert rec["status"] == status and rec["error"].startswith(message), rec
    assert rec["attempts"] == []  # one route, one key: tried once
    assert gw.fake.count(model=model.split("/")[1]) == 1


# ---------------------------------------------------------------- the real CLIs


def test_claude_code_hears_keepalives_while_the_model_thinks(gw: Gateway, tmp_path: Path) -> None:
    """Claude Code (2.1.197) through trayproxy, a model silent for 13 s, two clocks running:
    the SDK's ``API_TIMEOUT_MS`` (5 s here), which runs until the response's headers, and
    the byte watchdog (``CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS``, 10 s at least), which runs
    between any two bytes of the body. Claude Code arms the watchdog only for Anthropic's own
    base URL (``_CLAUDE_CODE_ASSUME_FIRST_PARTY_BASE_URL`` stands for that here;
    ``CLAUDE_ENABLE_BYTE_WATCHDOG`` only switches it off or on where it applies). With
    keep-alives every 2 s the headers come at 2 s and a comment every 2 s: the answer. The
    control, from a provider without keep-alives, times out after 5 s ("Request timed out").
    Both run at once."""
    if not CLAUDE.exists():
        pytest.fail(
            f"Claude Code is not installed in {CLAUDE.parent.parent}: npm ci --prefix tests/claude"
        )
    runs: dict[str, subprocess.Popen[str]] = {}
    for model in ("claude/think-13", "mute/think-13"):
        runs[model] = subprocess.Popen(
            [str(CLAUDE), "-p", "Say hello.", "--output-format", "json"],
            cwd=tmp_path,
            env=claude_env(gw, model, tmp_path / model.replace("/", "-")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    done = outcomes(runs)

    out, err, code = done["claude/think-13"]
    assert code == 0, out + err
    result = json.loads(out)
    assert result["is_error"] is False and result["result"] == "hello from think-13", result
    rec = gw.record("claude/think-13")
    assert (rec["status"], rec["endpoint"], rec["error"]) == (200, "messages", None)
    assert rec["duration_ms"] > 12_000  # the model did think for 13 s

    out, err, code = done["mute/think-13"]
    assert code == 1, out + err
    result = json.loads(out)
    assert result["is_error"] is True and result["result"] == "Request timed out", result
    assert result["duration_ms"] < 10_000
    rec = gw.record("mute/think-13")
    assert (rec["status"], rec["error"]) == (499, "client disconnected")


def outcomes(runs: dict[str, subprocess.Popen[str]]) -> dict[str, tuple[str, str, int]]:
    """What each of the CLIs run side by side printed, and its exit code (none left behind)."""
    try:
        return {name: (*run.communicate(timeout=50), run.returncode) for name, run in runs.items()}
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()


def claude_env(gw: Gateway, model: str, home: Path) -> dict[str, str]:
    env = claude_code.environment(gw.server.config, gw.server.root_url)  # what the user pastes
    env |= {key: model for key in env if key.endswith("_MODEL")}
    return env | {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",  # one request: a failure shows
        "API_TIMEOUT_MS": "5000",
        "CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS": "10000",  # its minimum
        "_CLAUDE_CODE_ASSUME_FIRST_PARTY_BASE_URL": "1",  # arms the byte watchdog
    }


def test_codex_hears_keepalives_while_the_model_thinks(gw: Gateway, tmp_path: Path) -> None:
    """Codex with ``stream_idle_timeout_ms = 3000`` and a model silent for 6 s, keep-alives
    every second; beside it, the same from a provider without keep-alives, which Codex waits
    for (its idle clock starts with the response's headers, held until content). Codex's idle
    clock counts SSE events, not comments: what keeps it waiting is trayproxy's
    ``response.created`` and then the API's own ``keepalive`` events."""
    from tests.test_codex_cli import setup_codex

    if not CODEX.exists():
        pytest.fail(f"Codex is not installed in {CODEX.parent.parent}: npm ci --prefix tests/codex")
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    setup_codex(gw.server, home, gw.config_file)
    runs: dict[str, subprocess.Popen[str]] = {}
    for model in ("codex/thinker", "mute/think-6"):
        runs[model] = subprocess.Popen(
            exec_command(
                work,
                "-c",
                "model_providers.trayproxy.stream_idle_timeout_ms=3000",
                "--profile",
                "codex-thinker",
                "-m",
                model,
                "Say hello.",
            ),
            env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    done = outcomes(runs)

    out, err, code = done["mute/think-6"]  # no keep-alives: Codex waits for the headers
    assert code == 0 and out.strip() == "hello from think-6", out + err
    assert gw.record("mute/think-6")["status"] == 200

    out, err, code = done["codex/thinker"]
    assert "idle timeout" not in err
    assert code == 0 and out.strip() == "hello from think-6", out + err
    assert gw.record("codex/thinker")["status"] == 200
