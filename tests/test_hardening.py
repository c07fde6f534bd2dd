"""Hostile and faulty cases: smuggled upstreams, bad input, fallbacks, timeouts, tokens,
slow and vanishing clients, and secrets that must never come out."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, config_text, http, post_json, settled
from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.config.paths import app_paths
from trayproxy.desktop.app import App
from trayproxy.server.proxy_server import ProxyServer, ServerError

MESSAGES = [{"role": "user", "content": "hi"}]
TOKEN = "tp-client-token-0123456789abcdef"


@pytest.fixture
def serve(upstream):
    servers: list[ProxyServer] = []

    def start(extra: str = "", **server_keys: str) -> ProxyServer:
        text = config_text(upstream.url, extra=extra)
        lines = "".join(f"\n{k} = {v}" for k, v in server_keys.items())
        server = ProxyServer(
            parse(
                text.replace("[server]", "[server]" + lines, 1),
                environ={
                    "TP_TOKEN": TOKEN,
                },
            )
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=1)


def chat(server: ProxyServer, model: str, headers: dict | None = None, **extra):
    return post_json(
        server.base_url + "/chat/completions",
        {"model": model, "messages": MESSAGES, **extra},
        headers,
    )


def record(server: ProxyServer) -> dict:
    settled(server.logbook)
    return server.logbook.recent(1)[0].to_dict()


# ---------------------------------------------------------------- nothing picks the upstream


@pytest.mark.parametrize(
    "extra",
    [
        {"api_base": "http://127.0.0.1:9/v1"},
        {"base_url": "http://127.0.0.1:9/v1"},
        {"api_key": "sk-attacker"},
        {"extra_body": {"api_base": "http://127.0.0.1:9/v1"}},
        {"extra_body": {"extra_body": {"API_KEY": "x"}}},
    ],
)
def test_smuggled_upstream_fields_are_refused(serve, upstream, extra: dict) -> None:
    server = serve()
    status, _, body = chat(server, "nvidia/kimi-k2-thinking", **extra)
    assert status == 400
    err = json.loads(body)["error"]
    assert err["code"] == "forbidden_parameter"
    assert upstream.requests == []


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xff\xfe{not utf-8", "invalid_json"),
        (b'{"model": "a\\r\\nX-Injected: 1", "messages": []}', "invalid_model"),
        (b'{"model": ["list"]}', "missing_model"),
        (b"[1, 2]", "invalid_json"),
        (b"", "invalid_json"),
    ],
)
def test_bad_bodies_get_openai_errors(serve, upstream, raw: bytes, code: str) -> None:
    server = serve()
    status, headers, body = http(
        "POST", server.base_url + "/chat/completions", raw, {"Content-Type": "application/json"}
    )
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == code
    assert upstream.requests == []


@pytest.mark.parametrize("path", ["/v1/../etc/passwd", "/%00", "/v1/chat/completions/x", "/v1//"])
def test_odd_paths_are_json_404(serve, path: str) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] in (b"404", b"405")
    assert json.loads(body)["error"]["code"] in ("not_found", "method_not_allowed")


# ---------------------------------------------------------------- client token


def test_client_token_is_required_when_configured(serve, upstream) -> None:
    server = serve(token='"env:TP_TOKEN"')
    status, _, body = chat(server, "nvidia/kimi-k2-thinking")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert (
        chat(server, "nvidia/kimi-k2-thinking", {"Authorization": "Bearer wrong-token"})[0] == 401
    )
    assert chat(server, "nvidia/kimi-k2-thinking", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert chat(server, "nvidia/kimi-k2-thinking", {"x-api-key": TOKEN})[0] == 200
    # the token is the client's credential: it never travels upstream
    assert TOKEN not in json.dumps([r.headers for r in upstream.requests])
    # the openai SDK sends it as its api_key
    client = openai.OpenAI(base_url=server.base_url, api_key=TOKEN, max_retries=0)
    assert client.models.list().data
    # the page shell loads; its data needs the token
    assert http("GET", server.root_url + "/_trayproxy/")[0] == 200
    assert http("GET", server.root_url + "/_trayproxy/api/logs")[0] == 401


def test_non_loopback_without_token_refuses_to_start(upstream) -> None:
    config = parse(config_text(upstream.url)).with_server(host="0.0.0.0")
    with pytest.raises(ServerError, match="other machines use your provider keys"):
        ProxyServer(config).start()


def test_short_or_unset_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 16 characters"):
        parse('[server]\ntoken = "short"\n')
    with pytest.raises(ConfigError, match="env:NOPE_UNSET, which is not set"):
        parse('[server]\ntoken = "env:NOPE_UNSET"\n', environ={})


def test_tray_opens_the_page_with_the_token_in_the_fragment(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(upstream.url).replace(
            "[server]", '[server]\ntoken = "tp-literal-token-1234567890"', 1
        )
    )
    app = App(path, app_paths())
    app.start()
    try:
        assert app.page_url().endswith("/_trayproxy/#token=tp-literal-token-1234567890")
    finally:
        app.shutdown(grace=1)


# ---------------------------------------------------------------- keyring


def test_keyring_references(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            return {("trayproxy", "nvidia"): "nvapi-from-keychain"}.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            raise NotImplementedError

        def delete_password(self, service: str, username: str) -> None:
            raise NotImplementedError

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        text = '[providers.nvidia]\nbase_url = "https://x/v1"\napi_key = "keyring:nvidia"\n'
        config = parse(text)
        assert config.providers["nvidia"].api_key.secret.reveal() == "nvapi-from-keychain"
        assert "nvapi-from-keychain" not in repr(config)
        missing = parse(text.replace("keyring:nvidia", "keyring:other"))
        assert missing.providers["nvidia"].api_key.missing
    finally:
        keyring.set_keyring(previous)


def test_keyring_without_a_backend_is_a_clear_error() -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(ConfigError, match="OS keychain cannot be read"):
            parse('[providers.a]\nbase_url = "https://x/v1"\napi_key = "keyring:a"\n')
    finally:
        keyring.set_keyring(previous)


def test_config_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    from trayproxy.config.files import permission_warning

    path = tmp_path / "config.toml"
    path.write_text("")
    path.chmod(0o644)
    assert "readable by other users (mode 644)" in (permission_warning(path) or "")
    path.chmod(0o600)
    assert permission_warning(path) is None


# ---------------------------------------------------------------- fallbacks and faults

FALLBACK = """
[models."primary/broken"]
provider = "fake"
model = "error-500"
fallbacks = ["nvidia/kimi-k2-thinking"]

[models."primary/limited"]
provider = "fake"
model = "error-429"
fallbacks = ["fake/error-503"]

[models."primary/down"]
provider = "down"
model = "x"
fallbacks = ["nokey/model", "nvidia/kimi-k2-thinking"]

[models."primary/dies"]
provider = "fake"
model = "die-midstream"
fallbacks = ["nvidia/kimi-k2-thinking"]

[models."primary/authfail"]
provider = "fake"
model = "auth-echo"
fallbacks = ["nvidia/kimi-k2-thinking"]
"""


def test_5xx_falls_back_and_every_attempt_is_recorded(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    status, headers, body = chat(server, "primary/broken")
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert headers["x-should-retry"] == "false"
    assert [r.body["model"] for r in upstream.requests] == [
        "error-500",
        "moonshotai/kimi-k2-thinking",
    ]
    rec = record(server)
    assert [(a["provider"], a["status"]) for a in rec["attempts"]] == [("fake", 500), ("fake", 200)]
    assert rec["upstream_model"] == "moonshotai/kimi-k2-thinking" and rec["rule"] == "fallback"


def test_unreachable_and_keyless_providers_fall_back(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    status, _, _ = chat(server, "primary/down")
    assert status == 200
    attempts = record(server)["attempts"]
    assert [a["status"] for a in attempts] == [502, 502, 200]
    assert "Cannot reach provider 'down'" in attempts[0]["error"]
    assert "TRAYPROXY_TEST_UNSET_KEY" in attempts[1]["error"]


def test_all_attempts_failing_passes_the_last_on_with_retry_after(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    status, headers, body = chat(server, "primary/limited")
    assert status == 503
    assert json.loads(body)["error"]["message"] == "fake upstream says 503"
    assert headers["x-should-retry"] == "false"
    # the 429 asked for 7 s: the next request does not knock on that provider again
    # (it is skipped while a fallback remains)
    upstream.requests.clear()
    chat(server, "primary/limited")
    assert [r.body["model"] for r in upstream.requests] == ["error-503"]
    assert "skipped: rate-limited" in record(server)["attempts"][0]["error"]


def test_no_retry_after_the_first_byte(serve, upstream) -> None:
    server = serve(extra=FALLBACK)
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps({"model": "primary/dies", "messages": MESSAGES, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    assert text.count('"Hello"') == 1  # no duplicated text
    assert json.loads(text.strip().split("\n")[-1][6:])["error"]["code"] == "upstream_error"
    assert [r.body["model"] for r in upstream.requests] == ["die-midstream"]


def test_upstream_401_is_502_naming_the_provider_and_hides_the_key(serve, upstream, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve(extra=FALLBACK)
    status, headers, body = chat(
        server, "fake/auth-echo", {"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert status == 502
    err = json.loads(body)["error"]
    assert err["code"] == "upstream_auth_failed"
    assert "Provider 'fake' rejected trayproxy's key" in err["message"]
    assert "[providers.fake]" in err["message"]
    # not retried on a fallback: the key is wrong, a fallback would hide it
    assert len(upstream.requests) == 1 and chat(server, "primary/authfail")[0] == 502
    rec = record(server)
    outputs = [body.decode(), json.dumps(rec), caplog.text, json.dumps(dict(headers))]
    for text in outputs:
        assert UPSTREAM_KEY not in text
        for i in range(len(UPSTREAM_KEY) - 7):
            assert UPSTREAM_KEY[i : i + 8] not in text
    assert "[redacted]" in rec["error"]


def test_echoed_keys_in_passed_through_errors_are_hidden(serve) -> None:
    server = serve()
    status, _, body = chat(server, "fake/echo-400")
    assert status == 400
    assert UPSTREAM_KEY not in body.decode() and "[redacted]" in body.decode()


def test_events_split_across_writes_arrive_whole_and_are_counted(serve) -> None:
    server = serve()
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    pieces, usage = [], None
    for chunk in client.chat.completions.create(
        model="fake/split",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == "Hello from the fake upstream."
    assert usage is not None and usage.completion_tokens == 6
    rec = record(server)
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (11, 6)


def test_keep_alive_pings_are_not_progress(serve, upstream) -> None:
    upstream.slow_seconds = 4
    server = serve()
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(
            {"model": "impatient/pings", "messages": MESSAGES, "stream": True}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    assert time.monotonic() - started < 3.5  # idle_timeout = 1 s, pings every 0.1 s
    last = json.loads([line for line in text.split("\n") if line.startswith("data: ")][-1][6:])
    assert last["error"]["code"] == "upstream_timeout"
    assert "idle_timeout" in last["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_while_waiting_closes_the_upstream_request(
    serve, upstream, stream
) -> None:
    upstream.slow_seconds = 10
    server = serve()
    body = json.dumps({"model": "fake/slow", "messages": MESSAGES, "stream": stream}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 5
        while not upstream.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.requests
    left = time.monotonic()
    assert upstream.disconnected.wait(5)
    assert time.monotonic() - left < 1.0  # within a second
    deadline = time.monotonic() + 5
    while not server.logbook.recent() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert record(server)["status"] == 499


def test_a_slow_client_pushes_back_on_the_upstream(serve, upstream) -> None:
    """Backpressure: while the client does not read, the upstream cannot send everything,
    and trayproxy's memory does not take up the difference.

    The kernel buffers what trayproxy does not: here up to 32 MiB on a receiving socket
    (``tcp_rmem``) and 4 MiB on a sending one, so the client's own receive buffer is kept
    small and the provider has 128 MiB to send."""
    import http.client

    from tests.fake_upstream import FIREHOSE_BYTES

    server = serve()
    before = _rss()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    body = json.dumps({"model": "fake/firehose", "messages": MESSAGES, "stream": True})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    try:
        resp.read(64 * 1024)
        time.sleep(1.5)  # a client that stopped reading
        assert not upstream.sent_last.is_set()
        assert upstream.firehose_sent < FIREHOSE_BYTES // 2
        assert _rss() - before < 48 * 1024 * 1024
        total = 64 * 1024 + len(resp.read())
    finally:
        conn.close()
    assert total > FIREHOSE_BYTES
    assert upstream.sent_last.is_set()


def _rss() -> int:
    """This process's resident memory (it holds trayproxy and the fake provider)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------- secrets, everywhere


def _slices(secret: str) -> list[str]:
    return [secret[i : i + 8] for i in range(len(secret) - 7)]


def test_no_secret_reaches_any_output(tmp_path: Path, upstream) -> None:
    """Plant a provider key and a client token, drive errors that echo them, then grep the
    console, the log file, the history database and every page API for them."""
    import os
    import subprocess
    import sys

    from tests.conftest import free_port

    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    extra = '\n[models."echo/auth"]\nprovider = "fake"\nmodel = "auth-echo"\n'
    (home / "config.toml").write_text(
        config_text(upstream.url, port=port, extra=extra).replace(
            "[server]", '[server]\ntoken = "env:TP_TOKEN"', 1
        )
    )
    env = {**os.environ, "TRAYPROXY_HOME": str(home), "TP_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trayproxy", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if http("GET", base + "/v1/models", None, auth)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        answers = [
            post_json(base + "/v1/chat/completions", {"model": "nvidia/kimi-k2-thinking"}, auth),
            post_json(base + "/v1/chat/completions", {"model": "echo/auth"}, auth),
            post_json(base + "/v1/chat/completions", {"model": "fake/echo-400"}, auth),
            post_json(base + "/v1/chat/completions", {"model": UPSTREAM_KEY}, auth),
            post_json(base + "/v1/chat/completions", {"model": "x", "api_key": UPSTREAM_KEY}, auth),
            post_json(base + "/v1/chat/completions", {"model": "down/model"}, auth),
            post_json(
                base + "/v1/chat/completions",
                {"model": "m"},
                {"Authorization": f"Bearer {UPSTREAM_KEY}{TOKEN}"},
            ),
        ]
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a huge header
            sock.sendall(
                f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {TOKEN}{'A' * 9000}{UPSTREAM_KEY}\r\n\r\n".encode()
            )
            sock.recv(65536)
        time.sleep(1.0)  # the history writer batches every 0.5 s
        api = [
            http("GET", base + path, None, auth)[2].decode()
            for path in (
                "/_trayproxy/api/logs?limit=100",
                "/_trayproxy/api/status",
                "/_trayproxy/api/usage",
                "/_trayproxy/",
            )
        ]
        uids = [r["uid"] for r in json.loads(api[0])["data"]]
        api += [
            http("GET", f"{base}/_trayproxy/api/logs/{u}", None, auth)[2].decode() for u in uids
        ]
    finally:
        proc.terminate()
        console, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    outputs = {
        "console": console,
        "log file": (home / "logs" / "trayproxy.log").read_text(errors="replace"),
        "history": (home / "data" / "history.db").read_bytes().decode("latin-1"),
        "answers": json.dumps([(s, dict(h), b.decode()) for s, h, b in answers]),
        "page and API": "\n".join(api),
    }
    assert len(uids) >= 6
    for where, text in outputs.items():
        for secret in (UPSTREAM_KEY, TOKEN):
            for piece in _slices(secret):
                assert piece not in text, f"{piece!r} of a secret appears in the {where}"


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        (b"X-Big: " + b"a" * 20000, 431, "headers_too_large"),
        (b"X-Bad\x01: 1", 400, "bad_request"),
    ],
)
def test_unparseable_requests_get_json_errors(serve, header: bytes, status: int, code: str):
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port
            + header
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == status
    assert json.loads(body)["error"]["code"] == code
