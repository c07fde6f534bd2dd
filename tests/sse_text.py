"""What the two stream-grammar validators (tests/anthropic_grammar.py, tests/responses_grammar.py)
share: an SSE byte stream cut into its blank-line-separated blocks of numbered lines (framing
checked: UTF-8, no unterminated event), strict JSON, and short quotes for their messages."""

from __future__ import annotations

import json
from typing import Any, NoReturn

Block = list[tuple[int, str]]  # (line number, line) of one event, comments included


def require(condition: object, message: str) -> None:
    """An explicit check that stays under ``python -O``."""
    if not condition:
        raise AssertionError(message)


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def strict_json(text: str) -> Any:
    """json.loads without the NaN / Infinity extensions, which are not JSON."""

    def reject(constant: str) -> NoReturn:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=reject)


def short(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def blocks(raw: bytes) -> list[Block]:
    """The stream's events as blocks of lines; fails on bytes that are not UTF-8 and on an
    event without the blank line that ends it."""
    require(isinstance(raw, (bytes, bytearray)), f"expected bytes, got {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"SSE stream is not valid UTF-8: {exc}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[Block] = []
    block: Block = []
    # The last element follows the final line end: it is an unfinished line (or "").
    for lineno, line in enumerate(lines[:-1], 1):
        if line:
            block.append((lineno, line))
        elif block:
            out.append(block)
            block = []
    leftover = "\n".join([line for _, line in block] + [lines[-1]])
    first = block[0][0] if block else len(lines)
    require(
        not leftover.strip(),
        f"line {first}: unterminated event (no blank line after it): {short(leftover)}",
    )
    return out
