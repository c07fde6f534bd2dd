"""An incremental Server-Sent Events parser that watches a stream it does not change.

The relay writes every upstream chunk to the client first and then feeds the same bytes
here. Only the ``data`` field matters to us; comments (``:`` lines) and other fields are
skipped. Lines end in LF or CRLF.
"""

from __future__ import annotations

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
