"""Find the line of a key path in TOML text, for error messages.

``tomllib`` reports positions only for syntax errors. To point a validation error at its line
we scan the text for table headers and ``key =`` lines. This is a locator, not a parser: when
it cannot tell, it returns ``None`` and the message just omits the line.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def format_key_path(path: tuple[str, ...]) -> str:
    """``("models", "a/b", "provider")`` -> ``models."a/b".provider``."""
    return ".".join(p if _BARE.fullmatch(p) else '"' + p.replace('"', '\\"') + '"' for p in path)


def _split_dotted(text: str) -> tuple[str, ...] | None:
    """Split ``a."b.c".d`` into its parts; ``None`` if it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            j = i + 1
            buf = []
            while j < n and text[j] != quote:
                if quote == '"' and text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            i = j + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group(0))
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return tuple(parts)
        if text[i] != ".":
            return None
        i += 1


def _key_part(line: str) -> str | None:
    """The key text before ``=`` outside quotes, or None."""
    quote = ""
    for idx, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return line[:idx]
        elif ch == "#":
            return None
    return None


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each table header and key path to its 1-based line number (first occurrence)."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline = ""
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if in_multiline:
            if in_multiline in line:
                in_multiline = ""
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            inner = line.lstrip("[")
            end = inner.find("]")
            parts = _split_dotted(inner[:end]) if end >= 0 else None
            if parts is not None:
                table = parts
                found.setdefault(table, lineno)
            continue
        key_text = _key_part(line)
        if key_text is None:
            continue
        parts = _split_dotted(key_text)
        if parts is None:
            continue
        found.setdefault(table + parts, lineno)
        rest = line[len(key_text) + 1 :].strip()
        for delim in ('"""', "'''"):
            if rest.startswith(delim) and rest.count(delim) == 1:
                in_multiline = delim
    return found


def line_of(text: str, path: tuple[str, ...]) -> int | None:
    """Line of ``path``, or of its nearest enclosing key or table that the text names."""
    lines = key_lines(text)
    for size in range(len(path), 0, -1):
        hit = lines.get(path[:size])
        if hit is not None:
            return hit
    return None
