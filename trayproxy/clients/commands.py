"""The commands that set up and check clients: ``trayproxy continue-config``, ``codex``,
``claude-code`` and ``doctor``, as the command line runs them (printing, exit statuses)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _print_or_merge(
    override: str | None,
    merge: bool,
    file: str | None,
    *,
    render: Callable[[Config, str], str],
    merge_into: Callable[[Path, Config, str], Any],
    default_path: Callable[[], Path],
    errors: tuple[type[Exception], ...],
) -> int:
    """A client's set-up printed (``render``), or merged into its own file (``merge_into``,
    whose result has a ``summary``)."""
    config = load_or_say_why(config_path(override))
    if config is None:
        return 1
    base = f"http://{format_host(config.server.host)}:{config.server.port}/v1"
    if not merge:
        if file:
            print("error: --file goes with --merge", file=sys.stderr)
            return 2
        print(render(config, base), end="")
        return 0
    target = Path(file).expanduser() if file else default_path()
    try:
        result = merge_into(target, config, base)
    except (*errors, OSError) as exc:
        print(f"error: cannot merge into {target}: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def continue_config_command(override: str | None, merge: bool, file: str | None) -> int:
    from ruamel.yaml.error import YAMLError

    from trayproxy.clients import continue_config, continue_merge

    return _print_or_merge(
        override,
        merge,
        file,
        render=continue_config.render,
        merge_into=continue_merge.merge_into,
        default_path=continue_config.default_path,
        errors=(continue_merge.MergeError, YAMLError),
    )


def codex_command(override: str | None, merge: bool, file: str | None) -> int:
    from trayproxy.clients import codex_config
    from trayproxy.clients.replace_file import ReplaceError

    return _print_or_merge(
        override,
        merge,
        file,
        render=codex_config.render,
        merge_into=codex_config.merge_into,
        default_path=codex_config.default_path,
        errors=(ReplaceError,),
    )


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
