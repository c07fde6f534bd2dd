"""trayproxy's notices as a test keeps them: ``ProxyServer(notify=box)``."""

from __future__ import annotations

import threading
import time


class NoticeBox:
    """Every (title, text) trayproxy told the user; they come from a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, str]] = []
        self.threads: list[str] = []  # the thread each came from

    def __call__(self, title: str, text: str) -> None:
        with self._lock:
            self._items.append((title, text))
            self.threads.append(threading.current_thread().name)

    def all(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._items)

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        """The notices once ``count`` arrived, and a moment more so that one too many would
        show too."""
        deadline = time.monotonic() + timeout
        while len(self.all()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        return self.all()
