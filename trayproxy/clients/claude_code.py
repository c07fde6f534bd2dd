"""Claude Code's set-up for trayproxy: the environment that points it here (``trayproxy
claude-code``, "Copy Claude Code setup" in the tray and on the page), for a shell and as the
``env`` block of its ``settings.json``."""

from __future__ import annotations

import json
import shlex

from trayproxy.config.model import Config

# Without these Claude Code also calls Anthropic (telemetry, error reports, updates), which
# a user routing it elsewhere does not want, and which fails on a closed network.
QUIET = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
NO_TOKEN = "trayproxy"  # Claude Code wants some token; without [server] token any will do


def models(config: Config) -> tuple[str, str]:
    """The ids for Claude Code's main and small models: ``[claude_code]``, else the first
    mapped id for both."""
    first = next(iter(config.models), "")
    main = config.claude_code.model or first
    return main, config.claude_code.small_model or main


def environment(config: Config, root_url: str) -> dict[str, str]:
    """The variables, in the order they are shown. ``root_url`` has no ``/v1``: Claude
    Code adds it."""
    token = config.server.token.secret
    main, small = models(config)
    env = {
        "ANTHROPIC_BASE_URL": root_url,
        "ANTHROPIC_AUTH_TOKEN": token.reveal() if token is not None else NO_TOKEN,
    }
    if main:
        env |= {
            "ANTHROPIC_MODEL": main,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": main,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": main,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": small,
            "ANTHROPIC_SMALL_FAST_MODEL": small,  # the name before Claude Code 2
        }
    return env | QUIET


def shell(config: Config, root_url: str) -> str:
    lines = ["# Claude Code through trayproxy: run these in your shell, then `claude`."]
    if not config.claude_code.model:
        lines.append("# Set [claude_code] model and small_model in config.toml to choose.")
    lines += [f"export {k}={shlex.quote(v)}" for k, v in environment(config, root_url).items()]
    return "\n".join(lines) + "\n"


def settings(config: Config, root_url: str) -> str:
    """The ``env`` block for ``~/.claude/settings.json``."""
    return json.dumps({"env": environment(config, root_url)}, indent=2) + "\n"
