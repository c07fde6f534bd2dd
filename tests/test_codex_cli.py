"""The real Codex CLI (npm ``@openai/codex``, pinned in tests/codex), headless (``codex
exec``), through trayproxy, set up with what ``trayproxy codex --merge`` writes: a shell-tool
round trip that reads a file, to chat-only providers that think (Kimi, DeepSeek) or refuse any
unknown field (Mistral); an ``apply_patch`` edit; and a provider that breaks off mid-stream.
Nothing reaches the internet: every provider is a fake on 127.0.0.1, and Codex's analytics and
plugin lookups are off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import dialect_upstream
from tests.codex_cli import CODEX, exec_command
from tests.conftest import config_text as fake_config
from tests.fake_upstream import FakeUpstream
from tests.test_responses_endpoint import config_text
from trayproxy.clients.codex_config import profile_name
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

SECRET = "The secret word is PAMPLEMOUSSE-7."
# Codex's own settings that would look things up on the internet
QUIET = "\n[analytics]\nenabled = false\n\n[features]\nplugins = false\n"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def codex() -> Path:
    if not CODEX.exists():
        pytest.fail(
            f"Codex is not installed in {CODEX.parent.parent}: run `bash scripts/test.sh` "
            "(npm ci --prefix tests/codex)."
        )
    return CODEX


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("work")
    (work / "notes.txt").write_text(SECRET + "\n")
    return work


def setup_codex(server: ProxyServer, home: Path, config_file: Path, extra: str = "") -> None:
    """What a user does: ``trayproxy codex --merge`` into Codex's config."""
    codex_file = home / ".codex" / "config.toml"
    codex_file.parent.mkdir(parents=True, exist_ok=True)
    codex_file.write_text(QUIET + extra)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trayproxy",
            "codex",
            "--config",
            str(config_file),
            "--merge",
            "--file",
            str(codex_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # the proxy under test listens on a port of its own: point the provider there
    text = codex_file.read_text().replace("http://127.0.0.1:0/v1", server.base_url)
    codex_file.write_text(text)


@pytest.fixture(scope="module")
def server(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    chat = dialect_upstream.DialectUpstream().start()
    text = config_text(chat.url, "http://127.0.0.1:9")
    text += '\n[models."gpt-5.5"]\nprovider = "nvidia"\nmodel = "kimi-k2-thinking"\n'
    config_file = tmp_path_factory.mktemp("config") / "config.toml"
    config_file.write_text(text)
    server = ProxyServer(parse(text, file=str(config_file)))
    server.start()
    home = workspace.parent / "home"
    setup_codex(server, home, config_file)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dialect_upstream, "READ_FILE_PATH", "notes.txt")
        yield server
    server.stop(grace=1)
    chat.stop()


def run_codex(
    codex: Path, workspace: Path, *args: str, sandbox: str = "read-only"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        exec_command(workspace, *args, sandbox=sandbox),
        env={"HOME": str(workspace.parent / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "profile",
    ["nvidia/kimi-k2-thinking", "deepseek/reasoner", "mistral/large", "groq/gpt-oss-120b"],
)
def test_codex_runs_a_command_through_trayproxy(
    codex: Path, server: ProxyServer, workspace: Path, profile: str
) -> None:
    done = run_codex(
        codex, workspace, "--profile", profile_name(profile), "What does notes.txt say?"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET in done.stdout  # the command ran, and its output came back to the model
    records = [r.to_dict() for r in server.logbook.recent(10) if r.client_model == profile]
    assert len(records) >= 2 and all(r["status"] == 200 for r in records[:2])
    assert records[0]["endpoint"] == "responses"
    assert "Responses API → Chat Completions" in records[0]["rewrites"]


def test_codex_applies_a_patch_through_trayproxy(
    codex: Path, server: ProxyServer, workspace: Path
) -> None:
    """With a model Codex knows (gpt-5.5 here, mapped to the Kimi-like fake), it offers its
    freeform apply_patch tool: trayproxy offers it as a function and answers the call as a
    custom_tool_call, which Codex applies."""
    done = run_codex(
        codex,
        workspace,
        "-m",
        "gpt-5.5",
        "--profile",
        "nvidia-kimi-k2-thinking",
        "Write a patch that adds a file.",
        sandbox="workspace-write",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    created = workspace / dialect_upstream.PATCHED_FILE
    assert created.read_text() == "written through trayproxy\n"


def test_a_provider_that_breaks_off_reaches_codex_as_a_failure(
    codex: Path, workspace: Path, tmp_path: Path
) -> None:
    fake = FakeUpstream().start()
    text = fake_config(fake.url)
    config_file = tmp_path / "config.toml"
    config_file.write_text(text)
    server = ProxyServer(parse(text))
    server.start()
    home = tmp_path / "home"
    try:
        setup_codex(server, home, config_file)
        done = subprocess.run(
            [
                str(codex),
                "exec",
                "--skip-git-repo-check",
                "--ephemeral",
                "-C",
                str(workspace),
                "-c",
                "model_providers.trayproxy.stream_max_retries=0",
                "--profile",
                "nvidia-kimi-k2-thinking",
                "-m",
                "fake/die-midstream",
                "hi",
            ],
            env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1
        assert "Provider 'fake'" in done.stderr
    finally:
        server.stop(grace=1)
        fake.stop()
