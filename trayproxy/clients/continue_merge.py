"""``trayproxy continue-config --merge``: trayproxy's model entries merged into the user's own
Continue ``config.yaml`` with ruamel.yaml's round trip, so that their comments, key order,
indentation and own models stay as they were; written atomically, with a backup."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from trayproxy.clients import yaml_layout as layout
from trayproxy.clients.continue_config import dump, entries, make_yaml, skeleton
from trayproxy.clients.replace_file import ReplaceError, read_text, replace
from trayproxy.config.model import Config


class MergeError(ValueError):
    pass


# How trayproxy knows the entries it owns in the user's `models:` list: the comment below on
# the entry's `name:` line. Not the apiBase (the README shows entries written by hand with
# trayproxy's URL, and the URL changes with the port) and not the " (trayproxy)" in the name
# (the same README entry has it). A comment is what a user can see and act on: the file says
# which entries each merge rewrites, and deleting the comment makes that entry theirs.
OWNED = "written by trayproxy continue-config --merge"
# the block the first version of --merge wrote; its entries are taken over once
LEGACY_BEGIN = (
    "# >>> trayproxy models: written by `trayproxy continue-config --merge`, replaced each time"
)
LEGACY_END = "# <<< trayproxy models"


_NEW_FILE = (
    "# Continue's config, created by `trayproxy continue-config --merge`.\n"
    f"# Each merge rewrites the entries marked `{OWNED}`;\n"
    "# add your own models next to them.\n"
)


# ---------------------------------------------------------------- merging into the user's file


@dataclass(frozen=True)
class Changes:
    added: list[str]
    updated: list[str]
    removed: list[str]
    unchanged: list[str]
    skipped: list[str]  # names the user's own entries already use

    @property
    def count(self) -> int:
        """How many entries of trayproxy's the file holds."""
        return len(self.added) + len(self.updated) + len(self.unchanged)


@dataclass(frozen=True)
class MergeResult:
    path: Path
    changes: Changes
    written: bool
    created: bool
    backup: Path | None

    def summary(self) -> str:
        """What the merge did, for the command line."""
        c = self.changes
        if not self.written:
            lines = [f"{self.path}: already up to date ({c.count} trayproxy models); not written."]
        else:
            done = [
                f"{len(names)} {verb}"
                for names, verb in ((c.added, "added"), (c.updated, "updated"))
                if names
            ]
            done += [f"removed: {', '.join(c.removed)}"] if c.removed else []
            verb = "created with" if self.created else "now holds"
            lines = [
                f"{self.path}: {verb} {c.count} trayproxy models ({'; '.join(done) or 'tidied'})."
            ]
        if self.backup:
            lines.append(f"The previous file is saved as {self.backup}.")
        if c.skipped:
            lines.append("Left alone (your own entries have these names): " + ", ".join(c.skipped))
        return "\n".join(lines)


# -- where ruamel keeps comments. The blank lines and comments after an entry (up to the next
# entry or key) hang on the entry's last scalar; moving or removing an entry carries them along.


def _plain(node: Any) -> Any:
    """The data without comments or styles, with the order of keys."""
    if isinstance(node, dict):
        return [(_plain(k), _plain(v)) for k, v in node.items()]
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _owned(item: Any, legacy: tuple[int, int] | None) -> bool:
    if not isinstance(item, CommentedMap) or not isinstance(item.get("name"), str):
        return False
    if legacy is not None and legacy[0] <= item.lc.line <= legacy[1]:
        return True
    slot = item.ca.items.get("name")
    token = slot[2] if slot else None
    return token is not None and OWNED in token.value.partition("\n")[0]


def _mark(entry: CommentedMap) -> CommentedMap:
    entry.yaml_add_eol_comment(OWNED, "name")
    return entry


def _load(yaml: YAML, text: str) -> Any:
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = ", ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        raise MergeError(
            f"{where}{problem}. It is not valid YAML, so it was left as it is; fix it and run again"
        ) from None
    except YAMLError as exc:
        raise MergeError(f"not valid YAML ({exc}), so it was left as it is") from None


def _full_line_comments(text: str, skip: Collection[int] = ()) -> Counter[str]:
    return Counter(
        line.strip()
        for n, line in enumerate(text.splitlines())
        if line.lstrip().startswith("#") and n not in skip
    )


def _lines_of(node: Any) -> Iterator[int]:
    if isinstance(node, (CommentedMap, CommentedSeq)):
        yield node.lc.line
        for key, value in node.items() if isinstance(node, CommentedMap) else enumerate(node):
            pos = node.lc.data.get(key)
            if pos:
                yield pos[0]
                yield pos[2] if isinstance(node, CommentedMap) else pos[0]
            yield from _lines_of(value)


def _theirs(doc: Any, legacy: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """The user's part of a document: every key but `models`, and the entries not trayproxy's."""
    rest = [(k, _plain(v)) for k, v in doc.items() if k != "models"]
    models = doc.get("models")
    own = [_plain(m) for m in models if not _owned(m, legacy)] if isinstance(models, list) else []
    return rest, own


def merge(text: str, config: Config, base_url: str) -> tuple[str, Changes]:
    """``text`` (a Continue config.yaml) with trayproxy's entries brought up to date.

    trayproxy's entries (see ``OWNED``) are updated where they are, those of ids no longer
    mapped are removed, and new ones go after the last of them, or at the end of `models:`.
    Everything else is left as it was. An id whose name one of the user's own entries already
    uses is skipped. Returns the new text (``text`` itself when nothing changed) and what
    changed. Raises ``MergeError`` for a file it will not change.
    """
    original = text
    yaml = make_yaml()
    _load(yaml, text)  # a broken file is reported with its own line numbers
    lines = text.splitlines(keepends=True)
    begin = [i for i, line in enumerate(lines) if line.strip() == LEGACY_BEGIN]
    end = [i for i, line in enumerate(lines) if line.strip() == LEGACY_END]
    legacy = None
    if begin or end:
        if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
            raise MergeError(
                "the file has only one of the two marker comments an earlier trayproxy wrote; "
                f"remove the other one ({LEGACY_BEGIN[:24]}... / {LEGACY_END}) and run again"
            )
        b, e = begin[0], end[0]
        text = "".join(lines[:b] + lines[b + 1 : e] + lines[e + 1 :])
        legacy = (b, e - 2)  # the lines of the entries once the markers are gone
    created = not text.strip()
    doc = _load(yaml, text)
    if doc is None:  # empty, or comments only: Continue needs a name and a version
        text = (text.rstrip("\n") + "\n\n" if text.strip() else _NEW_FILE) + dump(yaml, skeleton())
        doc = _load(yaml, text)
    if not isinstance(doc, CommentedMap):
        raise MergeError(
            "its top level is not a mapping (name:, version:, models:, ...), so it is not a "
            "Continue config.yaml; it was left as it is"
        )
    yaml.indent(**layout.guess_indent(doc))
    theirs = _theirs(doc, legacy)

    models = doc.get("models")
    if models is not None and not isinstance(models, CommentedSeq):
        raise MergeError("`models:` is not a list; it was left as it is")
    if models is None:
        models = CommentedSeq()
        doc["models"] = models
    owned = [item for item in models if _owned(item, legacy)]
    mine = {id(item) for item in owned}
    user_names = {i.get("name") for i in models if isinstance(i, dict) and id(i) not in mine}
    wanted = entries(config, base_url)
    skipped = sorted(name for name in wanted if name in user_names)
    for name in skipped:
        del wanted[name]
    owned_lines = set()  # the lines of trayproxy's entries, from the first to the last
    for item in owned:
        span = list(_lines_of(item))
        owned_lines.update(range(min(span), max(span) + 1))
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    unchanged: list[str] = []
    kept: list[CommentedMap] = []

    for item in owned:
        i = next(n for n, x in enumerate(models) if x is item)
        name = item["name"]
        if name not in wanted or name in unchanged + updated:
            removed.append(name)
            layout.put_gap(doc, "models", layout.remove(models, i))
            continue
        entry = _mark(wanted[name])
        if legacy is None and _plain(item) == _plain(entry):
            unchanged.append(name)
            kept.append(item)
            continue
        gap = layout.take_gap(models, i)
        models[i] = entry
        layout.put_gap(models, i, gap)
        updated.append(name)
        kept.append(entry)

    new = [_mark(entry) for name, entry in wanted.items() if name not in unchanged + updated]
    if new:
        at = next(n for n, x in enumerate(models) if x is kept[-1]) + 1 if kept else len(models)
        gap = layout.take_gap(models, at - 1) if at > 0 else layout.take_gap(doc, "models")
        for offset, entry in enumerate(new):
            models.insert(at + offset, entry)
        layout.put_gap(models, at + len(new) - 1, gap)
        if models.fa.flow_style():  # `models: []`
            models.fa.set_block_style()
        added = [entry["name"] for entry in new]

    changes = Changes(added, updated, removed, unchanged, skipped)
    if not (added or updated or removed or legacy or created):
        return original, changes
    out = dump(yaml, doc)
    # what the round trip wrote is read back: the user's data and comments must all be there
    try:
        kept_all = _theirs(_load(make_yaml(), out)) == theirs
    except MergeError:
        kept_all = False
    lost = _full_line_comments(text, owned_lines) - _full_line_comments(out)
    if not kept_all or lost:
        detail = f" (the comment {next(iter(lost))!r})" if lost else ""
        raise MergeError(
            f"rewriting the file would have lost or broken some of your content{detail}; it "
            "was left as it is. Copy the entries from `trayproxy continue-config` instead"
        )
    return out, changes


def _read(path: Path) -> tuple[str, str]:
    try:
        return read_text(path)
    except ReplaceError as exc:
        raise MergeError(str(exc)) from None


def merge_into(path: Path, config: Config, base_url: str) -> MergeResult:
    """Merge into ``path`` (created if missing). A changed file is first copied to a
    timestamped backup, then replaced in one step; an unchanged file is not touched."""
    legacy = path.with_name("config.json")
    if not path.exists() and legacy.exists():
        raise MergeError(
            f"Continue reads {legacy} here and there is no {path.name}; creating one would "
            "replace your config. Convert it to config.yaml in Continue first, or copy the "
            "entries from `trayproxy continue-config`."
        )
    target = Path(os.path.realpath(path))  # a symlinked config stays a symlink
    exists = target.exists()
    old, newline = _read(target) if exists else ("", "\n")
    text, changes = merge(old, config, base_url)
    if exists and text == old:
        return MergeResult(path, changes, written=False, created=False, backup=None)
    try:
        backup = replace(target, old, text, newline, exists=exists)
    except ReplaceError as exc:
        raise MergeError(str(exc)) from None
    return MergeResult(path, changes, written=True, created=not exists, backup=backup)
