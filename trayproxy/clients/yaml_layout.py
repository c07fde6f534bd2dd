"""Keeping a YAML file's layout while ruamel.yaml edits it: the blank lines and comments that
ruamel attaches to a list entry (moved with it, or taken out with it), and the indentation
the file already uses."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from trayproxy.clients.continue_config import INDENT


def is_block(node: Any) -> bool:
    return (
        isinstance(node, (CommentedMap, CommentedSeq))
        and len(node) > 0
        and not node.fa.flow_style()
    )


def tail_slots(parent: Any, key: Any) -> tuple[Any, Any, int, Any]:
    """(ca.items, key, slot, value) for the comment after ``parent[key]``'s last line."""
    while is_block(parent[key]):
        parent = parent[key]
        key = next(reversed(parent)) if isinstance(parent, CommentedMap) else len(parent) - 1
    return parent.ca.items, key, 2 if isinstance(parent, CommentedMap) else 0, parent[key]


def tail_tokens(slots: tuple[Any, Any, int, Any]) -> list[CommentToken]:
    items, key, slot, value = slots
    found = []
    entry = items.get(key)
    if entry is not None and entry[slot] is not None:
        found.append(entry[slot])
    flow = getattr(value, "ca", None)  # a flow collection's comment is also kept on itself
    token = flow.comment[0] if flow is not None and flow.comment else None
    if token is not None and all(token is not t for t in found):
        found.append(token)
    return found


def take_gap(parent: Any, key: Any) -> str:
    """Cut the lines after ``parent[key]``'s last line (blank lines, comments); return them."""
    gap = ""
    for token in tail_tokens(tail_slots(parent, key)):
        head, newline, rest = token.value.partition("\n")
        gap = gap or rest
        token.value = head + newline if head.strip() else "\n"
    return gap


def put_gap(parent: Any, key: Any, gap: str) -> None:
    """Add ``gap`` (lines) after ``parent[key]``'s last line."""
    if not gap:
        return
    slots = tail_slots(parent, key)
    tokens = tail_tokens(slots)
    if tokens:
        for token in tokens:
            token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + gap
        return
    items, key, slot, value = slots
    token = CommentToken("\n" + gap, CommentMark(0), None)
    items.setdefault(key, [None, None, None, None])[slot] = token
    if isinstance(value, (CommentedMap, CommentedSeq)):
        value.ca.comment = [token, None]


def pre_tokens(gap: str) -> list[CommentToken]:
    tokens = []
    for line in gap.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        tokens.append(CommentToken(stripped or "\n", CommentMark(len(line) - len(stripped)), None))
    return tokens


def remove(seq: CommentedSeq, i: int) -> str:
    """Remove entry ``i``, keeping the comments above and below it where they were. Returns
    them when the list is left empty, for the caller to put after the list's key."""
    before = seq.ca.items.get(i)
    above = "".join(t.value for t in (before[1] or [])) if before else ""
    lines = above + take_gap(seq, i)
    del seq[i]
    if not seq:
        seq.fa.set_flow_style()  # `models: []`, with the comments after it
    if lines and i > 0:
        put_gap(seq, i - 1, lines)
    elif lines and seq:
        slot = seq.ca.items.setdefault(0, [None, None, None, None])
        slot[1] = pre_tokens(lines) + (slot[1] or [])
    else:
        return lines
    return ""


def guess_indent(doc: Any) -> dict[str, int]:
    """The file's own indentation, read from where its first nested list and map start."""
    indent = dict(INDENT)
    found_map = found_seq = False
    todo = [doc]
    while todo and not (found_map and found_seq):
        node = todo.pop(0)
        if not isinstance(node, CommentedMap):
            continue
        for key, value in node.items():
            if not is_block(value) or key not in node.lc.data:
                continue
            key_col = node.lc.data[key][1]
            if isinstance(value, CommentedMap) and not found_map:
                indent["mapping"] = value.lc.col - key_col
                found_map = True
            if isinstance(value, CommentedSeq) and not found_seq and 0 in value.lc.data:
                indent["offset"] = value.lc.col - key_col
                indent["sequence"] = value.lc.data[0][1] - key_col
                found_seq = True
            todo.extend(value if isinstance(value, CommentedSeq) else [value])
    if indent["sequence"] < indent["offset"] + 2 or indent["mapping"] < 1:
        return dict(INDENT)
    return indent
