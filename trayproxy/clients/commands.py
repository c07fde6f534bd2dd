"""The commands that set up and check clients: ``trayproxy continue-config``, ``codex``,
``claude-code`` and ``doctor``, as the command line runs them (printing, exit statuses)."""

from __future__ import annotations

import sys
from pathlib import Path

from trayproxy.config.files import load_file
from trayproxy.config.model import Config, ConfigError
from trayproxy.config.paths import config_path
from trayproxy.core.hosts import format_host


def load_or_say_why(path: Path) -> Config | None:
    """The config, or None after printing where it is wrong."""
    try:
        return load_file(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def continue_config_command(override: str | None, merge: bool, file: str | None) -> int:
    from trayproxy.clients import continue_config, continue_merge

    config = load_or_say_why(config_path(override))
    if config is None:
        return 1
    base = f"http://{format_host(config.server.host)}:{config.server.port}/v1"
    if not merge:
        if file:
            print("error: --file goes with --merge", file=sys.stderr)
            return 2
        print(continue_config.render(config, base), end="")
        return 0
    from ruamel.yaml.error import YAMLError

    target = Path(file).expanduser() if file else continue_config.default_path()
    try:
        result = continue_merge.merge_into(target, config, base)
    except (continue_merge.MergeError, YAMLError, OSError) as exc:
        print(f"error: cannot merge into {target}: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def codex_command(override: str | None, merge: bool, file: str | None) -> int:
    from trayproxy.clients import codex_config
    from trayproxy.clients.replace_file import ReplaceError

    config = load_or_say_why(config_path(override))
    if config is None:
        return 1
    base = f"http://{format_host(config.server.host)}:{config.server.port}/v1"
    if not merge:
        if file:
            print("error: --file goes with --merge", file=sys.stderr)
            return 2
        print(codex_config.render(config, base), end="")
        return 0
    target = Path(file).expanduser() if file else codex_config.default_path()
    try:
        result = codex_config.merge_into(target, config, base)
    except (ReplaceError, OSError) as exc:
        print(f"error: cannot merge into {target}: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def claude_code_command(override: str | None, as_settings: bool) -> int:
    from trayproxy.clients import claude_code

    config = load_or_say_why(config_path(override))
    if config is None:
        return 1
    root = f"http://{format_host(config.server.host)}:{config.server.port}"
    render = claude_code.settings if as_settings else claude_code.shell
    print(render(config, root), end="")
    return 0


def doctor_command(override: str | None, as_json: bool, timeout: float) -> int:
    import asyncio
    import json

    from trayproxy.clients import doctor

    config = load_or_say_why(config_path(override))
    if config is None:
        return 1
    report = asyncio.run(doctor.run(config, timeout=timeout))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(doctor.render(report))
    return 0 if report.healthy else 1
