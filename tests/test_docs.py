"""The docs stay honest: every config key and every command is documented."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from trayproxy.cli import COMMANDS, build_parser
from trayproxy.config import model
from trayproxy.config.parse import parse

ROOT = Path(__file__).parent.parent
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "key",
    sorted(model.SERVER_KEYS | model.ROUTING_KEYS | model.PROVIDER_KEYS | model.MODEL_KEYS),
)
def test_every_config_key_is_documented(key: str) -> None:
    assert f"| `{key}` |" in CONFIG_DOC


@pytest.mark.parametrize("section", sorted(model.SECTIONS))
def test_every_section_is_documented(section: str) -> None:
    assert f"`[{section}" in CONFIG_DOC


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"trayproxy {command}" in README


def test_readme_options_match_the_parser() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():  # type: ignore[union-attr]
        for action in subparser._actions:
            long = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            for option in long:
                assert option in README, f"`trayproxy {name} {option}` is not in the README"


def test_readme_config_example_is_valid() -> None:
    example = re.search(r"```toml\n(.*?)```", README, re.S)
    assert example is not None
    parsed = parse(example.group(1), environ={})
    assert parsed.models["nvidia/kimi-k2-thinking"].model == "moonshotai/kimi-k2-thinking"


def test_test_command_is_what_ci_runs() -> None:
    assert "bash scripts/test.sh" in README
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _error_codes() -> set[str]:
    """Every error code trayproxy's source gives a client: ``code="..."`` arguments, the code
    of a ``Failure(status, message, code)`` or a worded provider error, and ``(status, code)``
    pairs, read from the source's syntax tree."""
    import ast

    codes: set[str] = set()
    for path in (ROOT / "trayproxy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "code":
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    codes.add(value.value)
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in ("Failure", "_made") and len(node.args) >= 3:
                    code = node.args[2]
                    if isinstance(code, ast.Constant) and isinstance(code.value, str):
                        codes.add(code.value)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "code" for t in node.targets
            ):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    codes.add(node.value.value)
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
                status, code = node.elts
                if (
                    isinstance(status, ast.Constant)
                    and type(status.value) is int
                    and 400 <= status.value < 600
                    and isinstance(code, ast.Constant)
                    and isinstance(code.value, str)
                ):
                    codes.add(code.value)
    return codes


def test_the_code_reader_finds_codes() -> None:
    found = _error_codes()
    assert {"upstream_unreachable", "host_not_allowed", "headers_too_large"} <= found
    assert len(found) > 20


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_error_code_is_in_the_readme(code: str) -> None:
    assert f"`{code}`" in README, f"error code {code!r} is not in README's error tables"


def test_the_readme_says_where_files_live_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Linux column of README's table is where this machine's trayproxy puts them."""
    from trayproxy.config.paths import app_paths

    monkeypatch.delenv("TRAYPROXY_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    if not sys.platform.startswith("linux"):
        pytest.skip("the README's Linux column is checked on Linux")
    paths = app_paths()
    for folder in (paths.config_dir, paths.log_dir, paths.data_dir, paths.state_dir):
        shown = "`" + str(folder).replace("/home/u", "~", 1) + "/`"
        assert shown in README, f"{shown} is not in README's table of where files live"
