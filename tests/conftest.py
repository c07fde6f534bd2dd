from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from trayproxy.config.model import Config
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

UPSTREAM_KEY = "sk-tp-9f3Kq7Zx2LmW8vR4hJ6c"
MESSAGES = [{"role": "user", "content": "hi"}]
TOKEN = "tp-client-token-0123456789abcdef"  # [server] token, as env:TP_TOKEN in serve()
CLIENT_KEY = "client-key-should-not-travel"

_SCRUB_SUFFIXES = ("_API_KEY", "_PROXY")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys, proxies or config."""
    for name in list(os.environ):
        if name.upper().endswith(_SCRUB_SUFFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAYPROXY_HOME", str(tmp_path / "home"))
    # nor the developer's keychain: a provider without an api_key line looks there
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("BROWSER", "true")  # no test opens a real browser by accident
    # autostart entries and desktop files go to a scratch XDG tree, never the real one
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def config_text(upstream_url: str, *, extra: str = "", port: int = 0) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = {port}

[providers.fake]
base_url = "{upstream_url}/v1"
api_key = "{UPSTREAM_KEY}"

[providers.nokey]
base_url = "{upstream_url}/v1"
api_key = "env:TRAYPROXY_TEST_UNSET_KEY"

[providers.down]
base_url = "http://127.0.0.1:9/v1"
api_key = "{UPSTREAM_KEY}"
connect_timeout = 2

[providers.impatient]
base_url = "{upstream_url}/v1"
api_key = "{UPSTREAM_KEY}"
first_byte_timeout = 1
idle_timeout = 1

[models."nvidia/kimi-k2-thinking"]
provider = "fake"
model = "moonshotai/kimi-k2-thinking"
max_context_size = 262144

[models."fake/gated"]
provider = "fake"
model = "gated"

[models."fake/embed"]
provider = "fake"
model = "text-embedding-upstream"

[models."nokey/model"]
provider = "nokey"
model = "whatever"

[models."down/model"]
provider = "down"
model = "whatever"
{extra}
"""


@dataclass
class Proxy:
    server: ProxyServer
    upstream: FakeUpstream

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def root_url(self) -> str:
        return self.server.root_url


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def proxy(upstream: FakeUpstream) -> Iterator[Proxy]:
    config = parse(config_text(upstream.url), file="test-config.toml")
    server = ProxyServer(config)
    server.start()
    yield Proxy(server, upstream)
    server.stop(grace=1.0)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP request with the standard library: (status, headers, body)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def post_json(url: str, obj: object, headers: dict[str, str] | None = None):
    return http(
        "POST",
        url,
        json.dumps(obj).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )


def settled(logbook, count: int = 1, timeout: float = 5.0) -> None:
    """Wait until ``logbook`` holds ``count`` records: a client can finish reading a stream
    a moment before the handler files its record."""
    import time

    deadline = time.monotonic() + timeout
    while len(logbook.recent(count)) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def started() -> Iterator[Callable[[Config], ProxyServer]]:
    """Start an in-process trayproxy for a config; every one is stopped after the test."""
    servers: list[ProxyServer] = []

    def start(config: Config) -> ProxyServer:
        server = ProxyServer(config)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=1)


@pytest.fixture
def serve(upstream, started):
    def start(extra: str = "", **server_keys: str) -> ProxyServer:
        text = config_text(upstream.url, extra=extra)
        lines = "".join(f"\n{k} = {v}" for k, v in server_keys.items())
        text = text.replace("[server]", "[server]" + lines, 1)
        return started(parse(text, environ={"TP_TOKEN": TOKEN}))

    return start


def chat(server: ProxyServer, model: str, headers: dict | None = None, **extra):
    return post_json(
        server.base_url + "/chat/completions",
        {"model": model, "messages": MESSAGES, **extra},
        headers,
    )


def record(server: ProxyServer) -> dict:
    settled(server.logbook)
    return server.logbook.recent(1)[0].to_dict()
