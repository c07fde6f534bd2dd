"""trayproxy driven by Continue.dev's own transport, the npm package @continuedev/openai-adapters.

``tests/js/continue_client.mjs`` calls ``constructLlmApi({provider: "openai", apiKey, apiBase})``
and runs chatCompletionStream, chatCompletionNonStream, completionStream, embed, rerank and list
against the proxy, then prints what the user would get. Needs Node.js and
``npm ci --prefix tests/js``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, Proxy
from tests.fake_upstream import WORDS

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "continue_client.mjs"
ADAPTER_VERSION = "1.37.0"
ADAPTER_PACKAGE = JS_DIR / "node_modules" / "@continuedev" / "openai-adapters" / "package.json"

CHAT_MODEL = "nvidia/kimi-k2-thinking"
CHAT_UPSTREAM_MODEL = "moonshotai/kimi-k2-thinking"
EMBED_MODEL = "fake/embed"
EMBED_UPSTREAM_MODEL = "text-embedding-upstream"
ANSWER = "".join(WORDS)  # "Hello from the fake upstream."
VECTOR = [0.25, -0.5, 1.0, 2.0]
CLIENT_TIMEOUT_S = 45
INSTALL_HINT = "Run `npm ci --prefix tests/js` (needs Node.js 18 or newer on PATH)."

# How Continue users write apiBase: with /v1 or without (Continue then POSTs /chat/completions),
# and with the trailing "/" that Continue's core appends before handing apiBase to the adapter.
API_BASES = {
    "v1": lambda p: p.base_url,
    "v1-slash": lambda p: p.base_url + "/",
    "root": lambda p: p.root_url,
    "root-slash": lambda p: p.root_url + "/",
}


def node_executable() -> str:
    """Node and the pinned adapter, or a failed test that says how to install them."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"`node` is not on PATH; the Continue client test needs it. {INSTALL_HINT}")
    if not ADAPTER_PACKAGE.is_file():
        pytest.fail(
            f"@continuedev/openai-adapters is not installed in {JS_DIR / 'node_modules'}. "
            + INSTALL_HINT
        )
    version = json.loads(ADAPTER_PACKAGE.read_text(encoding="utf-8")).get("version")
    if version != ADAPTER_VERSION:
        pytest.fail(
            f"tests/js/node_modules has @continuedev/openai-adapters {version}, the test pins "
            f"{ADAPTER_VERSION}. {INSTALL_HINT}"
        )
    return node


@dataclass
class ContinueRun:
    proxy: Proxy
    api_base: str
    result: dict[str, Any]


def run_continue_client(api_base: str) -> dict[str, Any]:
    node = node_executable()
    cmd = [
        node,
        str(SCRIPT),
        "--api-base",
        api_base,
        "--model",
        CHAT_MODEL,
        "--embed-model",
        EMBED_MODEL,
        "--api-key",
        CLIENT_KEY,
        "--timeout-ms",
        str((CLIENT_TIMEOUT_S - 5) * 1000),
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=JS_DIR,  # the adapter loads a .env from the working directory
            env=dict(os.environ),  # conftest has scrubbed keys and proxy settings
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=CLIENT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"the Continue client did not finish in {CLIENT_TIMEOUT_S}s against {api_base}\n"
            f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}"
        )
    assert proc.returncode == 0, (
        f"the Continue client failed against {api_base} (exit {proc.returncode}):\n"
        f"{proc.stderr}\nstdout: {proc.stdout}"
    )
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"the Continue client printed no JSON: {proc.stdout!r}\n{proc.stderr}")


@pytest.fixture(params=list(API_BASES), ids=list(API_BASES))
def api_base(request: pytest.FixtureRequest, proxy: Proxy) -> str:
    return API_BASES[request.param](proxy)


def run_against(proxy: Proxy, api_base: str) -> ContinueRun:
    """Run in the test body, not a fixture, so a missing Node setup is a FAILED test."""
    return ContinueRun(proxy, api_base, run_continue_client(api_base))


def header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def routing_log(proxy: Proxy) -> list[dict[str, Any]]:
    with urllib.request.urlopen(proxy.root_url + "/_trayproxy/api/logs", timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())["data"]


# ----------------------------------------------------------------------- what the user sees


def test_user_sees_the_answers(proxy: Proxy, api_base: str) -> None:
    continue_run = run_against(proxy, api_base)
    result = continue_run.result

    stream = result["chat_stream"]
    assert stream["content"] == ANSWER
    assert stream["pieces"] == WORDS
    assert stream["finish_reason"] == "stop"
    assert stream["usage_chunk"] is True
    assert stream["usage"] == {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}

    chat = result["chat"]
    assert chat["content"] == ANSWER
    assert chat["finish_reason"] == "stop"
    assert chat["usage"]["total_tokens"] == 17

    assert result["completion_stream"]["text"] == ANSWER

    vectors = result["embed"]["vectors"]
    assert vectors == [VECTOR, VECTOR], "the base64 embedding did not decode to the fake's vector"

    reranked = result["rerank"]["results"]
    assert [r["index"] for r in reranked] == [1, 0], "the reranker's order did not arrive"
    assert reranked[0]["relevance_score"] == 1.0

    models = result["models"]
    assert CHAT_MODEL in models
    assert EMBED_MODEL in models
    assert set(models) == set(continue_run.proxy.server.config.models)


# ----------------------------------------------------------------- what the upstream received


def test_upstream_gets_mapped_model_and_provider_key(proxy: Proxy, api_base: str) -> None:
    continue_run = run_against(proxy, api_base)
    seen = [r for r in continue_run.proxy.upstream.requests if r.method == "POST"]
    assert [r.path for r in seen] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/rerank",
    ]
    stream, chat, completion, embed, rerank = (r.body for r in seen)

    assert stream["model"] == CHAT_UPSTREAM_MODEL
    assert stream["stream"] is True
    assert stream["stream_options"] == {"include_usage": True}
    assert stream["max_tokens"] == 4096
    assert [m["role"] for m in stream["messages"]] == ["system", "user"]

    assert chat["model"] == CHAT_UPSTREAM_MODEL
    assert not chat.get("stream")

    assert completion["model"] == CHAT_UPSTREAM_MODEL
    assert completion["stream"] is True
    assert completion["prompt"].startswith("def fibonacci")
    assert completion["temperature"] == 0.01

    assert embed["model"] == EMBED_UPSTREAM_MODEL
    assert embed["encoding_format"] == "base64"
    assert embed["input"] == ["def fibonacci(n):", "hello world"]

    assert rerank["model"] == EMBED_UPSTREAM_MODEL
    assert rerank["query"] == "fibonacci function"
    assert len(rerank["documents"]) == 2

    for request in continue_run.proxy.upstream.requests:
        headers = request.headers
        assert header(headers, "Authorization") == f"Bearer {UPSTREAM_KEY}", request.path
        assert header(headers, "x-api-key") is None
        assert header(headers, "api-key") is None
        for name, value in headers.items():
            assert CLIENT_KEY not in value, f"the client key reached the upstream in {name}"


# ---------------------------------------------------------------------- trayproxy's routing log


def test_routing_log_records_the_continue_requests(proxy: Proxy, api_base: str) -> None:
    continue_run = run_against(proxy, api_base)
    records = routing_log(continue_run.proxy)
    relayed = [(r["endpoint"], r["stream"]) for r in records]
    # newest first
    assert relayed == [
        ("rerank", False),
        ("embeddings", False),
        ("completions", True),
        ("chat/completions", False),
        ("chat/completions", True),
    ]
    for record in records:
        assert record["status"] == 200, record
        assert record["provider"] == "fake", record
        assert record["error"] is None, record

    rerank, embed, completion, chat, stream = records
    assert rerank["client_model"] == EMBED_MODEL
    assert stream["client_model"] == CHAT_MODEL
    assert stream["upstream_model"] == CHAT_UPSTREAM_MODEL
    assert stream["prompt_tokens"] == 11
    assert stream["completion_tokens"] == 6

    assert chat["client_model"] == CHAT_MODEL
    assert chat["prompt_tokens"] == 11
    assert chat["completion_tokens"] == 6

    assert completion["upstream_model"] == CHAT_UPSTREAM_MODEL

    assert embed["client_model"] == EMBED_MODEL
    assert embed["upstream_model"] == EMBED_UPSTREAM_MODEL
