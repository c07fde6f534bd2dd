"""One trayproxy per user: an OS lock on a file in the state directory.

The running instance also writes ``instance.json`` (pid and base URL) so that a second
launch can tell the user where the first one is serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

LOCK_NAME = "trayproxy.lock"
INFO_NAME = "instance.json"


class InstanceLock:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / LOCK_NAME
        self.info_path = state_dir / INFO_NAME
        self._fh: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting. False if another process holds it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - held for the life of the process
        try:
            _lock(fh)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def publish(self, url: str) -> None:
        """Record where this instance serves (call after binding, and after a rebind)."""
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}), encoding="utf-8")
        os.replace(tmp, self.info_path)

    def release(self) -> None:
        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            self.info_path.unlink(missing_ok=True)
        try:
            _unlock(self._fh)
        finally:
            self._fh.close()
            self._fh = None

    def running_info(self) -> dict[str, Any]:
        """What the instance holding the lock published (may be empty while it starts)."""
        try:
            data = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fh: IO[bytes]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(fh: IO[bytes]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
