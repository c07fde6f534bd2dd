"""`trayproxy continue-config` output, validated by Continue's own parser
(@continuedev/config-yaml from npm), and model metadata in /v1/models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import config_text, http
from trayproxy.clients import continue_merge
from trayproxy.config.model import Config
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

JS_DIR = Path(__file__).parent / "js"
EXTRA = """
[models."meta/full"]
provider = "fake"
model = "m"
max_context_size = 262144
max_output_tokens = 8192
capabilities = ["tool_use", "vision", "reasoning"]
"""


def validate_with_continue(text: str) -> dict:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@continuedev" / "config-yaml").is_dir():
        pytest.fail("Continue's config parser is not installed: run `npm ci --prefix tests/js`")
    result = subprocess.run(
        [node, "validate_config.mjs"],
        input=text,
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_generated_config_is_valid_for_continue(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, extra=EXTRA, port=8123))
    out = subprocess.run(
        [sys.executable, "-m", "trayproxy", "continue-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    parsed = validate_with_continue(out.stdout)
    assert parsed["errors"] == []
    by_model = {m["model"]: m for m in parsed["models"]}
    assert set(by_model) == {
        "nvidia/kimi-k2-thinking",
        "fake/gated",
        "fake/embed",
        "nokey/model",
        "down/model",
        "meta/full",
    }
    full = by_model["meta/full"]
    assert full["provider"] == "openai"
    assert full["apiBase"] == "http://127.0.0.1:8123/v1"
    assert full["roles"] == ["chat", "edit", "apply"]
    assert full["capabilities"] == ["tool_use", "image_input"]
    assert full["defaultCompletionOptions"] == {"contextLength": 262144, "maxTokens": 8192}
    assert by_model["nvidia/kimi-k2-thinking"]["defaultCompletionOptions"] == {
        "contextLength": 262144
    }


def test_token_is_referenced_not_printed(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    token = "tp-secret-token-1234567890"
    path.write_text(config_text(upstream.url).replace("[server]", f'[server]\ntoken = "{token}"'))
    out = subprocess.run(
        [sys.executable, "-m", "trayproxy", "continue-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert token not in out
    assert "${{ secrets.TRAYPROXY_TOKEN }}" in out


def test_models_list_carries_metadata(upstream) -> None:
    server = ProxyServer(parse(config_text(upstream.url, extra=EXTRA)))
    server.start()
    try:
        data = json.loads(http("GET", server.base_url + "/models")[2])["data"]
        entry = next(m for m in data if m["id"] == "meta/full")
        assert entry["context_length"] == 262144
        assert entry["max_output_tokens"] == 8192
        assert entry["capabilities"] == ["tool_use", "vision", "reasoning"]
        plain = next(m for m in data if m["id"] == "fake/gated")
        assert "capabilities" not in plain and "context_length" not in plain
    finally:
        server.stop(grace=1)


USER_CONFIG = """\
# my Continue setup
name: My assistant
version: 1.0.0
schema: v1

models:
  # the one I pay for
  - name: Claude
    provider: anthropic
    model: claude-sonnet-4-5
    apiKey: ${{ secrets.ANTHROPIC_KEY }}
    roles: [chat]
  - name: "fake/gated (trayproxy)"
    provider: openai
    model: fake/gated
    apiBase: http://127.0.0.1:9999/v1

context:
  - provider: code
"""


def merge(
    path: Path, target: Path | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`trayproxy continue-config --merge`, into ``target`` or (None) the default file."""
    cmd = [sys.executable, "-m", "trayproxy", "continue-config", "--config", str(path), "--merge"]
    return subprocess.run(
        cmd + (["--file", str(target)] if target else []),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def without_ours(text: str) -> str:
    """``text`` without the entries that carry trayproxy's comment on their `- name:` line."""
    out, dash = [], None
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" "))
        if dash is not None and line.strip() and indent > dash:
            continue
        dash = None
        if line.lstrip().startswith("- ") and line.rstrip().endswith("# " + continue_merge.OWNED):
            dash = indent
            continue
        out.append(line)
    return "".join(out)


def ours(text: str) -> list[str]:
    """The names on the `- name:` lines trayproxy marks as its own."""
    return [
        line.split("name:", 1)[1].split("#")[0].strip()
        for line in text.splitlines()
        if line.rstrip().endswith("# " + continue_merge.OWNED)
    ]


def test_merge_keeps_the_users_entries_and_backs_up(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, extra=EXTRA, port=8123))
    target = tmp_path / ".continue" / "config.yaml"
    target.parent.mkdir()
    target.write_text(USER_CONFIG)

    out = merge(path, target)
    assert out.returncode == 0, out.stderr
    backups = list(target.parent.glob("config.yaml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == USER_CONFIG
    assert "Left alone (your own entries have these names): fake/gated (trayproxy)" in out.stdout
    merged = target.read_text()
    # without trayproxy's entries, the file is exactly the user's
    assert without_ours(merged) == USER_CONFIG
    parsed = validate_with_continue(merged)
    assert parsed["errors"] == []
    names = [m["name"] for m in parsed["models"]]
    assert names.count("fake/gated (trayproxy)") == 1  # the user's entry, not a second one
    assert "Claude" in names and "meta/full (trayproxy)" in names
    assert len(names) == 1 + 6  # the user's Claude + trayproxy's six ids
    assert "context:" in merged

    # a second merge replaces the block instead of adding to it
    path.write_text(config_text(upstream.url, port=8123))  # meta/full is gone now
    again = merge(path, target)
    assert again.returncode == 0, again.stderr
    parsed = validate_with_continue(target.read_text())
    names = [m["name"] for m in parsed["models"]]
    assert "meta/full (trayproxy)" not in names and len(names) == 1 + 5
    assert len(list(target.parent.glob("config.yaml.bak-*"))) == 2


def test_merge_creates_a_missing_file_but_never_shadows_config_json(
    tmp_path: Path, upstream
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, port=8123))
    target = tmp_path / "fresh" / "config.yaml"
    out = merge(path, target)
    assert out.returncode == 0, out.stderr
    assert validate_with_continue(target.read_text())["errors"] == []

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text('{"models": []}')
    refused = merge(path, legacy / "config.yaml")
    assert refused.returncode == 1
    assert "config.json" in refused.stderr
    assert not (legacy / "config.yaml").exists()


IDS = ["down/model", "fake/embed", "fake/gated", "nokey/model", "nvidia/kimi-k2-thinking"]
BASE = "http://127.0.0.1:8123/v1"


def load(extra: str = "") -> Config:
    """The test mappings (`config_text`), and ``extra``."""
    return parse(config_text("http://127.0.0.1:9", extra=extra, port=8123), environ={})


def test_merge_into_a_missing_file_twice_follows_the_mappings(tmp_path: Path) -> None:
    """The default file is created with trayproxy's entries marked, so the next merge finds
    them: a mapping added since is added, one removed is removed."""
    home = tmp_path / "user"
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    path = tmp_path / "config.toml"
    path.write_text(config_text("http://127.0.0.1:9", port=8123))
    target = home / ".continue" / "config.yaml"

    first = merge(path, None, env)
    assert first.returncode == 0, first.stderr
    created = target.read_text()
    assert sorted(ours(created)) == [f"{i} (trayproxy)" for i in IDS]
    assert validate_with_continue(created)["errors"] == []

    text = config_text("http://127.0.0.1:9", extra=EXTRA, port=8123)
    down = '[models."down/model"]\nprovider = "down"\nmodel = "whatever"\n'
    assert down in text
    path.write_text(text.replace(down, ""))
    second = merge(path, None, env)
    assert second.returncode == 0, second.stderr
    merged = target.read_text()
    names = ours(merged)
    assert "meta/full (trayproxy)" in names and "down/model (trayproxy)" not in names
    assert len(names) == len(set(names)) == 5
    parsed = validate_with_continue(merged)
    assert parsed["errors"] == [] and len(parsed["models"]) == 5
    assert [p.read_text() for p in target.parent.glob("config.yaml.bak-*")] == [created]


RICH = """\
# My Continue config, tuned by hand
name: "My assistant"   # shown in Continue's picker
version: 1.0.0
schema: v1

# the models, best first
models:
  - name: Claude  # the default
    provider: anthropic
    model: claude-sonnet-4-5
    apiKey: ${{ secrets.ANTHROPIC_KEY }}
    roles: [chat, edit]

  # local, for autocomplete
  - name: Qwen coder
    provider: ollama
    model: 'qwen2.5-coder:1.5b'
    apiBase: http://localhost:11434
    roles:
      - autocomplete
    defaultCompletionOptions:
      temperature: 0.2   # low for completions

  # written by hand against trayproxy: still mine
  - name: Kimi by hand
    provider: openai
    model: nvidia/kimi-k2-thinking
    apiBase: http://127.0.0.1:8123/v1
    apiKey: unused
    defaultCompletionOptions:
      contextLength: 131072  # what I was told

# what Continue may read
context:
  - provider: code
  - provider: diff

rules:
  - Answer in English.   # always
data: []
"""


def test_merges_keep_the_users_file_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text(RICH)
    result = continue_merge.merge_into(target, load(extra=EXTRA), BASE)
    assert result.written and result.changes.count == 6
    merged = target.read_text()
    assert without_ours(merged) == RICH
    # trayproxy's entries follow the user's last one; the comment above `context:` stays there
    assert "  # what I was told\n  - name: down/model (trayproxy)" in merged
    assert "\n\n# what Continue may read\ncontext:" in merged
    parsed = validate_with_continue(merged)
    assert parsed["errors"] == []
    names = [m["name"] for m in parsed["models"]]
    assert names[:3] == ["Claude", "Qwen coder", "Kimi by hand"]
    assert sorted(names[3:]) == sorted(f"{i} (trayproxy)" for i in [*IDS, "meta/full"])

    # meta/full is unmapped, new/one is mapped: only trayproxy's entries change
    new = '[models."new/one"]\nprovider = "fake"\nmodel = "n"\n'
    result = continue_merge.merge_into(target, load(extra=new), BASE)
    assert result.changes.added == ["new/one (trayproxy)"]
    assert result.changes.removed == ["meta/full (trayproxy)"]
    again = target.read_text()
    assert without_ours(again) == RICH
    assert sorted(ours(again)) == sorted(f"{i} (trayproxy)" for i in [*IDS, "new/one"])
    assert validate_with_continue(again)["errors"] == []

    # and with no mappings left, the file is the user's again
    empty = parse("[server]\nport = 8123\n", environ={})
    continue_merge.merge_into(target, empty, BASE)
    assert target.read_text() == RICH


def test_when_every_mapping_goes_the_list_is_emptied(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    continue_merge.merge_into(target, load(), BASE)
    mine = "\n# what Continue may read\ncontext:\n  - provider: code\n"
    target.write_text(target.read_text() + mine)
    continue_merge.merge_into(target, parse("[server]\nport = 8123\n", environ={}), BASE)
    assert target.read_text().endswith("\nmodels: []\n" + mine)
    continue_merge.merge_into(target, load(), BASE)
    assert len(ours(target.read_text())) == 5 and target.read_text().endswith("\n" + mine)


FLAT = """\
name: flat
version: 0.0.1
models:
- name: Mine
  provider: ollama
  model: llama3
  roles:
  - chat
  defaultCompletionOptions:
    temperature: 0.1

context:
- provider: code
"""


def test_the_files_own_indentation_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text(FLAT)
    continue_merge.merge_into(target, load(extra=EXTRA), BASE)
    merged = target.read_text()
    assert without_ours(merged) == FLAT
    assert "    temperature: 0.1\n- name: down/model (trayproxy)" in merged
    assert (
        "\n  defaultCompletionOptions:\n    contextLength: 262144\n    maxTokens: 8192\n" in merged
    )
    assert validate_with_continue(merged)["errors"] == []


def test_a_broken_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text("http://127.0.0.1:9", port=8123))
    target = tmp_path / "continue" / "config.yaml"
    target.parent.mkdir()
    broken = RICH.replace("    provider: ollama", "   provider: ollama")  # line 16
    target.write_text(broken)
    before = target.stat()

    out = merge(path, target)
    assert out.returncode == 1
    assert f"cannot merge into {target}: line 16, column" in out.stderr
    assert "left as it is" in out.stderr
    assert target.read_text() == broken and target.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.yaml"]  # no backup, no temp


def test_merging_twice_changes_nothing_and_says_so(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text(USER_CONFIG)
    first = continue_merge.merge_into(target, load(extra=EXTRA), BASE)
    assert first.written and first.backup is not None
    merged = target.read_bytes()
    stamp = target.stat().st_mtime_ns

    second = continue_merge.merge_into(target, load(extra=EXTRA), BASE)
    assert not second.written and second.backup is None
    assert second.changes.count == 5 and not (second.changes.added or second.changes.updated)
    assert second.changes.skipped == ["fake/gated (trayproxy)"]
    assert "already up to date (5 trayproxy models); not written" in second.summary()
    assert target.read_bytes() == merged and target.stat().st_mtime_ns == stamp
    assert len(list(tmp_path.glob("config.yaml.bak-*"))) == 1


def test_the_first_versions_marked_block_is_taken_over(tmp_path: Path) -> None:
    """Files merged by the first --merge (a block between two marker comments) are updated
    in place, not given a second copy of every entry."""
    old_block = "".join(
        f'  - name: "{i} (trayproxy)"\n    provider: openai\n    model: "{i}"\n'
        f'    apiBase: "{BASE}"\n    apiKey: "trayproxy"\n    roles: [chat, edit, apply]\n'
        for i in ["down/model", "gone/model"]
    )
    head, tail = USER_CONFIG.split("  # the one I pay for\n")
    legacy = (
        f"{head}  {continue_merge.LEGACY_BEGIN}\n{old_block}  {continue_merge.LEGACY_END}\n"
        f"  # the one I pay for\n{tail}"
    )
    target = tmp_path / "config.yaml"
    target.write_text(legacy)
    result = continue_merge.merge_into(target, load(), BASE)
    assert result.changes.updated == ["down/model (trayproxy)"]
    assert result.changes.removed == ["gone/model (trayproxy)"]
    merged = target.read_text()
    assert "trayproxy models" not in merged.replace("name: trayproxy models", "")
    assert without_ours(merged) == USER_CONFIG
    names = [m["name"] for m in validate_with_continue(merged)["models"]]
    assert len(names) == len(set(names)) == 1 + 5


def test_the_file_is_replaced_in_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "config.yaml"
    target.write_bytes(RICH.replace("\n", "\r\n").encode())
    link = tmp_path / "link.yaml"
    link.symlink_to(target)

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(continue_merge.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        continue_merge.merge_into(link, load(), BASE)
    assert target.read_bytes() == RICH.replace("\n", "\r\n").encode()
    assert not list(tmp_path.glob(".config.yaml.*"))  # the temporary file is gone
    monkeypatch.undo()

    continue_merge.merge_into(link, load(), BASE)
    assert link.is_symlink()  # the real file was written, the link stays
    data = target.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n")  # Windows line ends stay
    assert without_ours(data.decode().replace("\r\n", "\n")) == RICH
