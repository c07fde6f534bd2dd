"""One trayproxy per user: an OS lock on a file in the state directory.

The lock is ``filelock.FileLock``: ``flock`` on Unix, ``LockFileEx`` on Windows. The OS drops
it when the holding process ends, however it ends, so a crashed or killed instance never
blocks the next launch. (On a file system without ``flock``, filelock falls back to a marker
file that records its owner's pid and is taken over once that process is gone.)

The running instance also writes ``instance.json`` (pid and base URL) so that a second
launch can tell the user where the first one is serving.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

LOCK_NAME = "trayproxy.lock"
INFO_NAME = "instance.json"


class InstanceLock:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / LOCK_NAME
        self.info_path = state_dir / INFO_NAME
        # thread_local=False: the lock is taken on the main thread and may be released from
        # another (App.shutdown); mode 0o600: the file is this user's alone
        self._lock = FileLock(self.path, mode=0o600, thread_local=False)

    def acquire(self) -> bool:
        """Take the lock without waiting. False if another process holds it."""
        if self._lock.is_locked:
            return True
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            return False
        return True

    def publish(self, url: str) -> None:
        """Record where this instance serves (call after binding, and after a rebind)."""
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}), encoding="utf-8")
        os.replace(tmp, self.info_path)

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        with contextlib.suppress(OSError):
            self.info_path.unlink(missing_ok=True)
        self._lock.release(force=True)

    def running_info(self) -> dict[str, Any]:
        """What the instance holding the lock published (may be empty while it starts)."""
        try:
            data = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
