"""Reload on save: watch the config file and call back once it has settled.

Editors often save by writing a new file and renaming it over the old one, or by truncating
and writing in two steps. Polling the path's (inode, size, mtime) catches every variant on
every OS without a dependency; a change is reported only after it has stayed the same for
``debounce`` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from trayproxy.core.threads import leave_signals_to_the_main_thread, yield_cpu_to_serving

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


def signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigWatcher:
    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        *,
        interval: float = 0.5,
        debounce: float = 0.4,
    ) -> None:
        self.path = path
        self._on_change = on_change
        self._interval = interval
        self._debounce = debounce
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = signature(path)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trayproxy-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def mark_current(self) -> None:
        """Forget changes up to now (after a reload the app did itself)."""
        self._seen = signature(self.path)

    def _run(self) -> None:
        leave_signals_to_the_main_thread()
        yield_cpu_to_serving()
        while not self._stop.wait(self._interval):
            current = signature(self.path)
            if current == self._seen or current is None:
                continue  # unchanged, or mid-replace: the new file is not there yet
            # settle: wait until the file stops changing
            while not self._stop.wait(self._debounce):
                again = signature(self.path)
                if again == current:
                    break
                current = again
            if self._stop.is_set():
                return
            self._seen = current
            try:
                self._on_change()
            except Exception:
                log.exception("reloading after a config change failed")
