"""Codex's set-up for trayproxy (``trayproxy codex``, "Copy Codex config" in the tray and on
the page): a ``[model_providers.trayproxy]`` in ``~/.codex/config.toml`` that speaks the
Responses API to trayproxy, and a profile per mapped id. Codex (0.134 and later) reads a
profile from its own file, ``~/.codex/<name>.config.toml``, selected with ``codex --profile
<name>``, and refuses the older ``[profiles.<name>]`` tables. ``--merge`` writes them with
tomlkit's round trip (a user's comments, order and other keys kept), each changed file after a
backup."""

from __future__ import annotations

import os
import re
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


def profile_name(model_id: str) -> str:
    """Codex takes plain profile names (``--profile nvidia-kimi-k2-thinking``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", model_id).strip("-") or "model"


def _profiles(config: Config) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for model_id, mapping in config.models.items():
        profile: dict[str, object] = {"model": model_id, "model_provider": PROVIDER}
        if mapping.max_context_size:
            profile["model_context_window"] = mapping.max_context_size
        name, n = profile_name(model_id), 1
        while name in out:  # two ids that differ only in punctuation
            n += 1
            name = f"{profile_name(model_id)}-{n}"
        out[name] = profile
    return out


def render(config: Config, base_url: str) -> str:
    """What to paste: the provider block for ``config.toml``, then each profile's file."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Codex through trayproxy. In ~/.codex/config.toml:"))
    if config.server.token.secret is not None:
        doc.add(tomlkit.comment(f"trayproxy wants its token: export {TOKEN_ENV}=<[server] token>"))
    doc.add(tomlkit.nl())
    providers = tomlkit.table(is_super_table=True)
    providers.add(PROVIDER, _provider(config, base_url))
    doc.add("model_providers", providers)
    out = [tomlkit.dumps(doc)]
    for name, profile in _profiles(config).items():
        lines = [f"# ~/.codex/{name}.config.toml (codex --profile {name})"]
        lines += [f"{key} = {tomlkit.item(value).as_string()}" for key, value in profile.items()]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


@dataclass
class MergeResult:
    path: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        if not self.added and not self.updated:
            return f"{self.path.parent}: trayproxy's provider and profiles are up to date."
        done = [
            f"{len(n)} {verb}"
            for n, verb in ((self.added, "added"), (self.updated, "updated"))
            if n
        ]
        lines = [f"{self.path.parent}: trayproxy's provider and profile files ({', '.join(done)})."]
        lines += [f"The previous file is saved as {b}." for b in self.backups]
        return "\n".join(lines)


def merge(
    text: str, values: dict[str, object], table: str | None = None, drop: tuple[str, ...] = ()
) -> tuple[str, bool]:
    """``text`` with ``values`` set (in ``table``, or at the top) and the keys ``drop``
    removed: only those keys change; everything else stays. Returns the text and whether it
    changed."""
    doc = tomlkit.parse(text)
    target = doc
    if table is not None:
        section, name = table.split(".", 1)
        parent = doc.get(section)
        if parent is None:
            parent = tomlkit.table(is_super_table=True)
            doc.add(section, parent)
        if not isinstance(parent, Table):
            raise ReplaceError(f"[{section}] is not a table in this file")
        if name not in parent:
            new = tomlkit.table()
            new.add(tomlkit.nl())
            parent.add(name, new)
        target = parent[name]
    stale = [k for k in drop if k in target]
    if not stale and all(target.get(k) == v for k, v in values.items()):
        return text, False
    for key in stale:
        del target[key]
    for key, value in values.items():
        target[key] = value
    return tomlkit.dumps(doc), True


def _merge_file(
    path: Path,
    values: dict[str, object],
    table: str | None,
    label: str,
    result: MergeResult,
    drop: tuple[str, ...] = (),
) -> None:
    target = Path(os.path.realpath(path))
    exists = target.exists()
    old, newline = read_text(target) if exists else ("", "\n")
    try:
        text, changed = merge(old, values, table, drop)
    except tomlkit.exceptions.ParseError as exc:
        raise ReplaceError(f"{path} is not valid TOML ({exc}); it was left as it is") from None
    if not changed:
        return
    backup = replace(target, old, text, newline, exists=exists)
    (result.updated if exists else result.added).append(label)
    if backup is not None:
        result.backups.append(backup)


def merge_into(path: Path, config: Config, base_url: str) -> MergeResult:
    """The provider into ``path`` (Codex's ``config.toml``), each profile into its file next
    to it."""
    result = MergeResult(path)
    table = f"model_providers.{PROVIDER}"
    provider = _provider(config, base_url)
    # without a [server] token, an env_key from an earlier merge would make Codex demand it
    drop = () if "env_key" in provider else ("env_key",)
    _merge_file(path, provider, table, table, result, drop)
    for name, profile in _profiles(config).items():
        _merge_file(path.with_name(f"{name}.config.toml"), profile, None, name, result)
    return result
