"""Several keys per provider, driven by the real clients: the Claude Code CLI (headless, set
up with ``trayproxy claude-code``'s environment), the Codex CLI (``codex exec``, set up with
``trayproxy codex --merge``) and Continue's own transport (``@continuedev/openai-adapters``),
each through an in-process trayproxy to the strict fake provider of tests/keyed_upstream.py.
A key answered 429 rests and the same question moves to the next key (asked once each); a key
answered 401 is set aside with one notice and is not asked again. What is checked is what the
user sees (the client's output) and what the provider received and trayproxy recorded."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.codex_cli import PATH, exec_command
from tests.conftest import CLIENT_KEY
from tests.keyed_upstream import (
    CHAT_PATH,
    OK,
    REJECTED,
    Behaviour,
    KeyedUpstream,
    Received,
    Usage,
    rate_limited_body,
    rate_limited_header,
)
from tests.notice_box import NoticeBox
from tests.test_claude_code_cli import CLAUDE
from tests.test_codex_cli import CODEX, setup_codex
from tests.test_continue_client import JS_DIR, node_executable
from trayproxy.clients import claude_code
from trayproxy.clients.codex_config import profile_name
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

K1 = "sk-one-4Hd8Qz2Lp6Wm1Xc"
K2 = "sk-two-9Rb3Tn7Vy5Ke0Jf"
MODEL = "multi/m"  # what the clients ask for
UPSTREAM_MODEL = "m1"  # what the provider is asked for
ANSWER = f"hello from {UPSTREAM_MODEL}"  # the fake's answer
PRICE = {"input": 0.6, "output": 2.5, "cached_input": 0.15}  # dollars per million tokens
USAGE = Usage(prompt_tokens=1234, completion_tokens=321, cached_tokens=200, reasoning_tokens=0)
pytestmark = pytest.mark.timeout(60)


def config_text(base_url: str) -> str:
    price = ", ".join(f"{k} = {v}" for k, v in PRICE.items())
    return f"""
[server]
host = "127.0.0.1"
port = 0

[providers.multi]
base_url = "{base_url}"
api_keys = [{{ key = "{K1}", label = "k1" }}, {{ key = "{K2}", label = "k2" }}]

[models."{MODEL}"]
provider = "multi"
model = "{UPSTREAM_MODEL}"
price = {{ {price} }}
"""


class Rig:
    """The fake provider with the keys K1 and K2 behaving as told, and a trayproxy in front
    of it (provider ``multi``: ``api_keys = [k1, k2]``) that keeps its notices."""

    def __init__(self, k1: Behaviour, config_file: Path) -> None:
        self.fake = KeyedUpstream({K1: k1, K2: OK}, usage=USAGE).start()
        self.text = config_text(self.fake.base_url)
        config_file.write_text(self.text)
        self.config_file = config_file
        self.notices = NoticeBox()
        self.server = ProxyServer(parse(self.text, file=str(config_file)), notify=self.notices)
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=1)
        self.fake.stop()

    def chats(self) -> list[Received]:
        return [r for r in self.fake.requests if r.path == CHAT_PATH]

    def records(self, count: int) -> list[dict[str, Any]]:
        """Every record, oldest first, once ``count`` were filed and none is in flight."""
        deadline = time.monotonic() + 5
        while len(self.server.logbook.recent()) < count or self.server.in_flight:
            assert time.monotonic() < deadline, "a request filed no record"
            time.sleep(0.01)
        return [r.to_dict() for r in reversed(self.server.logbook.recent())]

    def wait_notices(self, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        return self.notices.wait(count, timeout)

    def check_nothing_sent_twice(self) -> None:
        """No question reached the provider twice with one key."""
        pairs = Counter(
            (json.dumps(r.body.get("messages"), sort_keys=True), r.key) for r in self.chats()
        )
        assert all(n == 1 for n in pairs.values()), "a question sent twice with the same key"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Any]:
    made: list[Rig] = []

    def make(k1: Behaviour) -> Rig:
        made.append(Rig(k1, tmp_path / "config.toml"))
        return made[-1]

    yield make
    for r in made:
        r.stop()


def expected_cost(usage: Usage) -> float:
    fresh = usage.prompt_tokens - usage.cached_tokens
    return (
        fresh * PRICE["input"]
        + usage.cached_tokens * PRICE["cached_input"]
        + usage.completion_tokens * PRICE["output"]
    ) / 1e6


# ---------------------------------------------------------------- Claude Code


def test_claude_code_answers_through_the_second_key_while_the_first_rests(
    rig, tmp_path: Path
) -> None:
    assert CLAUDE.exists(), "Claude Code is not installed: npm ci --prefix tests/claude"
    r = rig(rate_limited_body(7.5))
    work = tmp_path / "work"
    work.mkdir()
    env = claude_code.environment(r.server.config, r.server.root_url)  # what the user pastes
    assert env["ANTHROPIC_MODEL"] == MODEL
    env |= {
        "HOME": str(tmp_path / "home"),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "CLAUDE_CODE_MAX_RETRIES": "0",  # a failure shows at once, never retried by Claude
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(CLAUDE), "-p", "Say hello."],  # headless: prints the answer and exits
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ANSWER
    assert K1 not in done.stdout + done.stderr and K2 not in done.stdout + done.stderr

    # one question, asked once with k1 (429 "try again in 7.5s.") and once with k2
    chats = r.chats()
    assert [(c.key, c.status) for c in chats] == [(K1, 429), (K2, 200)]
    assert chats[0].body == chats[1].body  # the same request moved on, not a new one
    r.check_nothing_sent_twice()

    (first,) = r.records(1)
    assert first["endpoint"] == "messages" and first["status"] == 200
    assert first["key_label"] == "k2"
    assert first["keys_skipped"] == ["multi k1: answered 429, resting 7.5 s"]
    assert [(a["key"], a["status"]) for a in first["attempts"]] == [("k1", 429), ("k2", 200)]
    # the cost is the mapping's price of what the provider said it used
    assert (first["prompt_tokens"], first["completion_tokens"], first["cached_tokens"]) == (
        USAGE.prompt_tokens,
        USAGE.completion_tokens,
        USAGE.cached_tokens,
    )
    assert first["cost"] == pytest.approx(expected_cost(USAGE), rel=1e-9, abs=0)
    assert r.wait_notices(1, timeout=0.3) == []  # a 429 is no news for the user
    assert took < 20, f"Claude Code took {took:.1f} s"


# ---------------------------------------------------------------- Codex


def run_codex(home: Path, work: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        exec_command(work, "--profile", profile_name(MODEL), prompt),
        env={"HOME": str(home), "PATH": PATH},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_codex_answers_through_the_second_key_when_the_first_is_rejected(
    rig, tmp_path: Path
) -> None:
    assert CODEX.exists(), "Codex is not installed: npm ci --prefix tests/codex"
    r = rig(REJECTED)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    setup_codex(r.server, home, r.config_file)  # trayproxy codex --merge

    started = time.monotonic()
    done = run_codex(home, work, "Say hello.")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ANSWER  # codex exec prints the last answer on stdout
    assert [(c.key, c.status) for c in r.chats()] == [(K1, 401), (K2, 200)]
    assert r.chats()[0].body["messages"] == r.chats()[1].body["messages"]
    (first,) = r.records(1)
    assert first["endpoint"] == "responses" and first["status"] == 200
    assert first["key_label"] == "k2"
    assert first["keys_skipped"] == ["multi k1: 401 Invalid API Key"]
    assert [(a["key"], a["status"]) for a in first["attempts"]] == [("k1", 502), ("k2", 200)]
    notices = r.wait_notices(1)
    assert len(notices) == 1, notices
    title, text = notices[0]
    assert "multi" in title and "'k1'" in text and "401" in text, notices
    assert K1 not in title + text and K2 not in title + text

    # a second Codex session: k1 is set aside, so the provider hears only k2
    again = run_codex(home, work, "Say hello again.")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == ANSWER
    assert [(c.key, c.status) for c in r.chats()[2:]] == [(K2, 200)]
    assert len(r.fake.requests_with(K1)) == 1
    second = r.records(2)[-1]
    assert second["key_label"] == "k2" and second["attempts"] == []
    assert len(second["keys_skipped"]) == 1
    assert second["keys_skipped"][0].startswith("multi k1: set aside")
    assert len(r.wait_notices(2, timeout=0.3)) == 1  # said once
    r.check_nothing_sent_twice()
    assert took < 20, f"Codex took {took:.1f} s"


# ---------------------------------------------------------------- Continue's transport

# What Continue's chat panel does, through its own transport: a streamed chat, then a plain
# one (titles, edits). Run from tests/js, where the adapter is installed.
CONTINUE_SCRIPT = r"""
import { constructLlmApi } from "@continuedev/openai-adapters";

const [apiBase, apiKey, model] = process.argv.slice(1);
const api = constructLlmApi({ provider: "openai", apiKey, apiBase });
const messages = [
  { role: "system", content: "You are a helpful coding assistant." },
  { role: "user", content: "Say hello." },
];
const result = {};
try {
  const pieces = [];
  let usage = null;
  for await (const chunk of api.chatCompletionStream(
    { model, messages, stream: true, max_tokens: 4096 },
    AbortSignal.timeout(15000),
  )) {
    const content = chunk.choices?.[0]?.delta?.content;
    if (content) pieces.push(content);
    if (chunk.usage) usage = chunk.usage;
  }
  result.stream = { content: pieces.join(""), usage };
  const plain = await api.chatCompletionNonStream(
    { model, messages: [...messages, { role: "user", content: "Once more." }], max_tokens: 256 },
    AbortSignal.timeout(15000),
  );
  result.chat = { content: plain.choices?.[0]?.message?.content ?? null };
} catch (err) {
  process.stderr.write(`failed: ${err?.status} ${err?.message ?? err}\n`);
  process.exit(1);
}
process.stdout.write(JSON.stringify(result) + "\n");
"""


def test_continue_answers_through_the_second_key_while_the_first_rests(rig, tmp_path: Path) -> None:
    node = node_executable()
    r = rig(rate_limited_header(5))
    started = time.monotonic()
    done = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            CONTINUE_SCRIPT,
            r.server.base_url,
            CLIENT_KEY,
            MODEL,
        ],
        cwd=JS_DIR,  # where @continuedev/openai-adapters is installed
        capture_output=True,
        text=True,
        timeout=30,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stream"]["content"] == ANSWER
    assert result["stream"]["usage"]["prompt_tokens"] == USAGE.prompt_tokens
    assert result["chat"]["content"] == ANSWER

    chats = r.chats()
    # the stream: k1 asked once (429, Retry-After: 5), the same question then to k2; the
    # plain chat a moment later: straight to k2, k1 is resting
    assert [(c.key, c.status, c.body.get("stream") is True) for c in chats] == [
        (K1, 429, True),
        (K2, 200, True),
        (K2, 200, False),
    ]
    assert chats[0].body == chats[1].body
    assert len(r.fake.requests_with(K1)) == 1
    r.check_nothing_sent_twice()
    stream, plain = r.records(2)
    assert stream["key_label"] == "k2" and plain["key_label"] == "k2"
    assert stream["keys_skipped"] == ["multi k1: answered 429, resting 5 s"]
    assert [(a["key"], a["status"]) for a in stream["attempts"]] == [("k1", 429), ("k2", 200)]
    assert len(plain["keys_skipped"]) == 1
    assert plain["keys_skipped"][0].startswith("multi k1: rate-limited for ")
    assert plain["attempts"] == []
    assert r.wait_notices(1, timeout=0.3) == []  # a 429 is no news for the user
    assert took < 20, f"Continue took {took:.1f} s"
