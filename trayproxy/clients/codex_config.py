"""Codex's set-up for trayproxy: the ``~/.codex/config.toml`` block (``trayproxy codex``, "Copy
Codex config" in the tray and on the page) — a ``[model_providers.trayproxy]`` that speaks the
Responses API to trayproxy, and a ``[profiles."<id>"]`` per mapped id — and its merge into the
user's own file with tomlkit's round trip (their comments, order and other tables kept), with
a backup."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from trayproxy.clients.replace_file import ReplaceError, read_text, replace
from trayproxy.config.model import Config

PROVIDER = "trayproxy"
TOKEN_ENV = "TRAYPROXY_TOKEN"  # where Codex reads trayproxy's [server] token from, when set


def default_path() -> Path:
    home = os.environ.get("CODEX_HOME")
    return Path(home) / "config.toml" if home else Path.home() / ".codex" / "config.toml"


def _provider(config: Config, base_url: str) -> dict[str, object]:
    table: dict[str, object] = {"name": "trayproxy", "base_url": base_url, "wire_api": "responses"}
    if config.server.token.secret is not None:
        table["env_key"] = TOKEN_ENV
    return table


def _profiles(config: Config) -> dict[str, dict[str, object]]:
    out = {}
    for model_id, mapping in config.models.items():
        profile: dict[str, object] = {"model": model_id, "model_provider": PROVIDER}
        if mapping.max_context_size:
            profile["model_context_window"] = mapping.max_context_size
        out[model_id] = profile
    return out


def render(config: Config, base_url: str) -> str:
    """The block to paste into ``~/.codex/config.toml``."""
    doc = tomlkit.document()
    first = next(iter(config.models), None)
    doc.add(tomlkit.comment("Codex through trayproxy: run `codex --profile <id>`."))
    if config.server.token.secret is not None:
        doc.add(tomlkit.comment(f"trayproxy wants its token: export {TOKEN_ENV}=<[server] token>"))
    if first:
        doc.add(tomlkit.comment(f'To use it by default, put profile = "{first}" at the top.'))
    doc.add(tomlkit.nl())
    providers = tomlkit.table(is_super_table=True)
    providers.add(PROVIDER, _provider(config, base_url))
    doc.add("model_providers", providers)
    profiles = tomlkit.table(is_super_table=True)
    for name, profile in _profiles(config).items():
        profiles.add(name, profile)
    doc.add("profiles", profiles)
    return tomlkit.dumps(doc)


@dataclass
class MergeResult:
    path: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    written: bool = False
    backup: Path | None = None

    def summary(self) -> str:
        if not self.written:
            return f"{self.path}: already up to date; not written."
        done = [
            f"{len(n)} {verb}"
            for n, verb in ((self.added, "added"), (self.updated, "updated"))
            if n
        ]
        lines = [f"{self.path}: trayproxy's provider and profiles ({', '.join(done)})."]
        if self.backup:
            lines.append(f"The previous file is saved as {self.backup}.")
        return "\n".join(lines)


def merge(text: str, config: Config, base_url: str) -> tuple[str, list[str], list[str]]:
    """``text`` with trayproxy's provider and profiles set: only the keys trayproxy writes
    change; a user's other keys in those tables, and everything else, stay."""
    doc = tomlkit.parse(text)
    added: list[str] = []
    updated: list[str] = []
    wanted = {("model_providers", PROVIDER): _provider(config, base_url)}
    wanted |= {("profiles", name): p for name, p in _profiles(config).items()}
    for (section, name), values in wanted.items():
        parent = doc.get(section)
        if parent is None:
            parent = tomlkit.table(is_super_table=True)
            doc.add(section, parent)
        if not isinstance(parent, Table):
            raise ReplaceError(f"[{section}] is not a table in this file")
        table = parent.get(name)
        label = f"{section}.{name}"
        if table is None:
            new = tomlkit.table()
            for key, value in values.items():
                new[key] = value
            new.add(tomlkit.nl())  # a blank line before whatever table follows
            parent.add(name, new)
            added.append(label)
        elif any(table.get(k) != v for k, v in values.items()):
            updated.append(label)
            for key, value in values.items():
                table[key] = value
    return tomlkit.dumps(doc), added, updated


def merge_into(path: Path, config: Config, base_url: str) -> MergeResult:
    target = Path(os.path.realpath(path))
    exists = target.exists()
    old, newline = read_text(target) if exists else ("", "\n")
    try:
        text, added, updated = merge(old, config, base_url)
    except tomlkit.exceptions.ParseError as exc:
        raise ReplaceError(f"not valid TOML ({exc}); it was left as it is") from None
    result = MergeResult(path, added, updated)
    if exists and text == old:
        return result
    result.backup = replace(target, old, text, newline, exists=exists)
    result.written = True
    return result
