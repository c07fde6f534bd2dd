"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``, pinned in tests/claude),
headless, through trayproxy: set up with what ``trayproxy claude-code`` prints, asked to read
a file, so that each run is a two-turn tool round trip — to chat-only providers that think
(Kimi, DeepSeek) or refuse any unknown field (Mistral), and to one that speaks Messages; and
a provider that breaks off mid-stream. Nothing reaches the internet: Claude Code's calls home
are off (``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC``), and every provider is a fake on
127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import dialect_upstream, messages_upstream
from tests.conftest import config_text as fake_config
from tests.fake_upstream import FakeUpstream
from tests.test_messages_endpoint import config_text
from trayproxy.clients import claude_code
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

CLAUDE = Path(__file__).parent / "claude" / "node_modules" / ".bin" / "claude"
SECRET = "The secret word is PINEAPPLE-42."
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def claude() -> Path:
    if not CLAUDE.exists():
        pytest.fail(
            f"Claude Code is not installed in {CLAUDE.parent.parent}: run `bash scripts/test.sh` "
            "(npm ci --prefix tests/claude)."
        )
    return CLAUDE


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("work")
    (work / "notes.txt").write_text(SECRET + "\n")
    return work


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[ProxyServer]:
    chat = dialect_upstream.DialectUpstream().start()
    native = messages_upstream.MessagesUpstream().start()
    server = ProxyServer(parse(config_text(chat.url, native.url), file="claude.toml"))
    server.start()
    with pytest.MonkeyPatch.context() as patch:  # the agents read the workspace's file
        patch.setattr(dialect_upstream, "READ_FILE_PATH", str(workspace / "notes.txt"))
        patch.setattr(messages_upstream, "READ_FILE_PATH", str(workspace / "notes.txt"))
        yield server
    server.stop(grace=1)
    chat.stop()
    native.stop()


def run_claude(
    claude: Path, server: ProxyServer, workspace: Path, model: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = claude_code.environment(server.config, server.root_url)  # what the user pastes
    env |= {"ANTHROPIC_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": model}
    env |= {
        "HOME": str(workspace.parent / "home"),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "CLAUDE_CODE_MAX_RETRIES": "0",  # one answer per question: failures show at once
        **extra_env,
    }
    return subprocess.run(
        [str(claude), "-p", "Read notes.txt and tell me what it says.", "--output-format", "json"],
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "model",
    [
        "nvidia/kimi-k2-thinking",
        "deepseek/reasoner",
        "mistral/large",
        "groq/gpt-oss-120b",
        "moonshot/claude-fake-agent",
    ],
)
def test_claude_code_reads_a_file_through_trayproxy(
    claude: Path, server: ProxyServer, workspace: Path, model: str
) -> None:
    done = run_claude(claude, server, workspace, model)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["is_error"] is False, result
    assert result["num_turns"] >= 2  # the tool ran: a round trip, not a single answer
    assert SECRET in result["result"]
    records = [r.to_dict() for r in server.logbook.recent(10) if r.client_model == model]
    assert records and all(r["status"] == 200 for r in records[:2])
    assert records[0]["endpoint"] == "messages"


def test_a_provider_that_breaks_off_reaches_claude_code_as_an_api_error(
    claude: Path, workspace: Path
) -> None:
    fake = FakeUpstream().start()
    server = ProxyServer(parse(fake_config(fake.url)))
    server.start()
    try:
        done = run_claude(
            claude,
            server,
            workspace,
            "fake/die-midstream",
            CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK="1",
        )
        assert done.returncode == 1
        result = json.loads(done.stdout)
        assert result["is_error"] is True
        assert "API Error" in result["result"] and "Provider 'fake'" in result["result"]
    finally:
        server.stop(grace=1)
        fake.stop()
