"""A provider's Chat Completions stream read event by event, for the translations to other
protocols: bytes cut into whole events, each decoded chunk handed on; ``[DONE]``, an
in-stream error and the usage chunk noted on the way."""

from __future__ import annotations

from typing import Any

from trayproxy.core.jsonbody import loads_answer
from trayproxy.core.sse import EVENT_END, data_of, last_boundary


class ChatEvents:
    """Subclasses say what each chunk becomes (``_chunk``) and what an error event is."""

    def __init__(self) -> None:
        self._tail = b""
        self._usage: Any = None  # the provider's usage chunk, when it sends one
        self.done = False  # [DONE] seen
        self.failed = False  # an error event was sent: nothing more is translated
        self.ended = False  # the client's protocol's last event was written

    def flush(self) -> bytes:
        """The provider's last event when its stream ended without a blank line after it."""
        tail, self._tail = self._tail, b""
        return self.feed(tail + b"\n\n") if tail.strip() else b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._tail + chunk if self._tail else chunk
        end = last_boundary(data)
        self._tail = data[end:]
        if not end or self.failed:
            return b""
        out = []
        for raw in EVENT_END.split(data[:end]):
            payload, _ = data_of(raw)
            if payload:
                out.append(self._payload(payload))
        return b"".join(out)

    def _payload(self, payload: bytes) -> bytes:
        if payload == b"[DONE]":
            self.done = True
            return b""
        try:
            obj = loads_answer(payload)
        except (ValueError, UnicodeDecodeError):
            return b""
        if not isinstance(obj, dict) or self.failed:
            return b""
        err = obj.get("error")
        if not err and "error" in (obj.get("type"), obj.get("object")):
            err = obj  # {"type": "error", ...}, Mistral's {"object": "error", ...}
        if err:
            message = err.get("message") if isinstance(err, dict) else err
            return self.error(502, str(message or err), "server_error")
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return b""
        return self._chunk(choices[0])  # the other protocols' answers have one choice

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        raise NotImplementedError
