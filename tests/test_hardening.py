"""Hostile input and secrets: smuggled upstreams, bad bodies and paths, requests aiohttp
cannot parse, provider errors that echo a key, and secrets that must never come out."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import (
    TOKEN,
    UPSTREAM_KEY,
    chat,
    config_text,
    http,
    post_json,
)

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
