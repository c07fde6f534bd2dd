"""An incremental Server-Sent Events parser that watches a stream it does not change.

The relay writes every upstream chunk to the client first and then feeds the same bytes
here. Only the ``data`` field matters to us; comments (``:`` lines) and other fields are
skipped. Lines end in LF or CRLF.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_EVENT_BYTES = 8 * 1024 * 1024


class SSEParser:
    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._size = 0
        self._max = max_event_bytes
        self.overflowed = False
        self.events = 0

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Yield the ``data`` payload of each event completed by ``chunk``."""
        if self._tail:
            chunk = self._tail + chunk
            self._tail = b""
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            line = chunk[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    payload = b"\n".join(self._data)
                    self._data = []
                    self._size = 0
                    self.events += 1
                    yield payload
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                self._size += len(value)
                if self._size > self._max:
                    self.overflowed = True
                    self._data = []
                    self._size = 0
                    continue
                self._data.append(value)
        rest = chunk[start:]
        if len(rest) > self._max:
            self.overflowed = True
            rest = b""
        self._tail = rest


# ---------------------------------------------------------------- fast paths over whole events
#
# The relay looks into only a few events of a stream (usage, errors, reasoning). These helpers
# find an event's bounds around a match in bytes that end at an event boundary, so that the
# other events are never split into lines in Python.

_BOUNDARY = re.compile(rb"\r?\n\r?\n")


def last_boundary(data: bytes) -> int:
    """The index just past the last blank line in ``data`` (0 if there is none)."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def event_bounds(data: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of the event holding ``pos``; ``end`` is past its blank line."""
    lf = data.rfind(b"\n\n", 0, pos)
    crlf = data.rfind(b"\n\r\n", 0, pos)
    start = max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)
    m = _BOUNDARY.search(data, pos)
    return start, m.end() if m else len(data)


def data_of(event: bytes) -> tuple[bytes, bool]:
    """An event's ``data`` payload, and whether it has fields other than data and comments."""
    parts = []
    other = False
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
        elif line and not line.startswith(b":"):
            other = True
    return b"\n".join(parts), other


def find_all(data: bytes, needles: tuple[bytes, ...]) -> list[int]:
    """Every position of any of ``needles`` in ``data``, in order. bytes.find per needle:
    much faster than a regular expression alternation over a large chunk."""
    found = []
    for needle in needles:
        at = data.find(needle)
        while at >= 0:
            found.append(at)
            at = data.find(needle, at + len(needle))
    found.sort()
    return found
