"""`trayproxy doctor` and the page's "Check mappings": real requests to fake providers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import http
from tests.dialect_upstream import GOOD_KEY, DialectUpstream
from tests.test_cli import run
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

BAD_KEY = "sk-dialect-wrong-key-9876543210"


@pytest.fixture
def fake() -> Iterator[DialectUpstream]:
    f = DialectUpstream().start()
    yield f
    f.stop()


def config_for(url: str) -> str:
    return f"""
[server]
port = 0

[providers.good]
base_url = "{url}/v1"
api_key = "{GOOD_KEY}"

[providers.badkey]
base_url = "{url}/v1"
api_key = "{BAD_KEY}"

[providers.nokey]
base_url = "{url}/v1"
api_key = "env:TRAYPROXY_DOCTOR_UNSET"

[providers.down]
base_url = "http://127.0.0.1:9/v1"
connect_timeout = 2

[models."good/kimi"]
provider = "good"
model = "kimi-k2-thinking"

[models."good/retired"]
provider = "good"
model = "kimi-k1.5-retired"

[models."badkey/groq"]
provider = "badkey"
model = "groq-gpt-oss"

[models."nokey/mistral"]
provider = "nokey"
model = "mistral-large"

[models."down/qwen"]
provider = "down"
model = "qwen3"
"""


def by_id(report: dict) -> dict[str, str]:
    return {m["id"]: m["status"] for m in report["mappings"]}


EXPECTED = {
    "good/kimi": "ok",
    "good/retired": "not listed",
    "badkey/groq": "key rejected",
    "nokey/mistral": "key missing",
    "down/qwen": "not checked",
}


def test_doctor_command_flags_each_problem(fake: DialectUpstream, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_for(fake.url), encoding="utf-8")
    out = run("doctor", "--config", str(path), "--json", "--timeout", "5")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert by_id(report) == EXPECTED
    providers = {p["name"]: p for p in report["providers"]}
    assert providers["good"]["status"] == "ok" and providers["good"]["listed"] == 5
    assert providers["down"]["status"] == "unreachable"
    assert "TRAYPROXY_DOCTOR_UNSET" in providers["nokey"]["detail"]
    assert BAD_KEY not in out.stdout and GOOD_KEY not in out.stdout

    table = run("doctor", "--config", str(path), "--timeout", "5")
    assert table.returncode == 1
    assert "good/retired: not listed (good does not list 'kimi-k1.5-retired')" in table.stdout
    assert "badkey/groq: key rejected" in table.stdout
    # a provider's problem is said once, in its table; its mappings point there
    assert "down/qwen: not checked (provider 'down' is unreachable, above)" in table.stdout
    assert table.stdout.count(providers["down"]["detail"]) == 1


def test_doctor_is_happy_when_everything_is_served(fake: DialectUpstream, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[providers.good]\nbase_url = "{fake.url}/v1"\napi_key = "{GOOD_KEY}"\n'
        '[models."good/kimi"]\nprovider = "good"\nmodel = "kimi-k2-thinking"\n',
        encoding="utf-8",
    )
    out = run("doctor", "--config", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All mappings look healthy." in out.stdout


def test_page_check_runs_the_same_report(fake: DialectUpstream) -> None:
    server = ProxyServer(parse(config_for(fake.url), file="doctor.toml"))
    server.start()
    try:
        url = server.root_url + "/_trayproxy/api/doctor"
        status, _, body = http("POST", url, b"{}", {"Content-Type": "application/json"})
        assert status == 200
        assert by_id(json.loads(body)) == EXPECTED
        assert BAD_KEY.encode() not in body
        status, _, _ = http(
            "POST",
            url,
            b"{}",
            {"Content-Type": "application/json", "Origin": "http://evil.example"},
        )
        assert status == 403
    finally:
        server.stop(grace=1.0)


def test_a_long_model_list_is_read_whole(tmp_path: Path) -> None:
    """OpenRouter-sized lists (hundreds of KB) arrive in many reads."""
    from aiohttp import web

    from tests.serving import ServerThread

    names = [f"vendor/model-{i:05d}-" + "x" * 40 for i in range(6000)]

    def app() -> web.Application:
        async def models(request: web.Request) -> web.Response:
            return web.json_response({"data": [{"id": n, "object": "model"} for n in names]})

        a = web.Application()
        a.router.add_get("/v1/models", models)
        return a

    server = ServerThread(app, "long-list")
    url = server.start()
    try:
        path = tmp_path / "config.toml"
        path.write_text(
            f'[providers.big]\nbase_url = "{url}/v1"\n'
            f'[models."big/last"]\nprovider = "big"\nmodel = "{names[-1]}"\n'
        )
        out = run("doctor", "--config", str(path), "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["providers"][0]["listed"] == 6000
        assert by_id(report) == {"big/last": "ok"}
    finally:
        server.stop()
