"""The real Codex CLI as tests run it (tests/codex, from npm)."""

from __future__ import annotations

from pathlib import Path

CODEX = Path(__file__).parent / "codex" / "node_modules" / ".bin" / "codex"
# a clean environment: Codex reads its config from HOME and nothing else from the shell
PATH = "/usr/local/bin:/usr/bin:/bin"


def exec_command(
    workspace: Path, *args: str, sandbox: str = "read-only", ephemeral: bool = True
) -> list[str]:
    """``codex exec`` in ``workspace`` with no retries of its own (a test sees what trayproxy
    did), then ``args`` (``--profile``, ``-c``, the prompt...)."""
    return [
        str(CODEX),
        "exec",
        "--skip-git-repo-check",
        *(["--ephemeral"] if ephemeral else []),
        "-C",
        str(workspace),
        "-s",
        sandbox,
        "-c",
        "model_providers.trayproxy.request_max_retries=0",
        "-c",
        "model_providers.trayproxy.stream_max_retries=0",
        *args,
    ]
