"""``trayproxy status`` and ``trayproxy stop``: asking the trayproxy that runs for this user
(the one holding the single-instance lock) how it is, or to quit.

It is found through the lock and the ``instance.json`` it publishes (pid and URL). ``stop``
asks it over HTTP, as the page's Quit does, so that streams in flight get their grace on
every OS; where that cannot be done, on POSIX it sends SIGTERM, which does the same.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from trayproxy.config.describe import needing_keys
from trayproxy.config.files import load_file
from trayproxy.config.model import ConfigError
from trayproxy.desktop.instance import InstanceLock

NOT_RUNNING = 3  # the exit status of `status` when nothing runs (as LSB init scripts say)


def _running(lock: InstanceLock) -> dict[str, Any] | None:
    """What the running instance published, or None when none runs."""
    if lock.acquire():  # free: nothing runs (let go at once, for a start that may follow)
        lock.release()
        return None
    return lock.running_info()


def _root(url: str) -> str:
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _headers(config_file: Path) -> dict[str, str]:
    """The client token, when the config sets one (the page's API wants it too)."""
    try:
        token = load_file(config_file).server.token.secret
    except ConfigError:
        return {}
    return {"Authorization": f"Bearer {token.reveal()}"} if token else {}


def _call(method: str, url: str, headers: dict[str, str]) -> dict[str, Any]:
    body = b"{}" if method == "POST" else None
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json", **headers}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with opener.open(request, timeout=10) as answer:
        found = json.loads(answer.read())
    return found if isinstance(found, dict) else {}


def status(state_dir: Path, config_file: Path) -> int:
    info = _running(InstanceLock(state_dir))
    if info is None:
        print("trayproxy is not running.")
        return NOT_RUNNING
    url, pid = info.get("url"), info.get("pid")
    if not url:
        print(f"trayproxy is starting (pid {pid}).")
        return 0
    try:
        state = _call("GET", _root(url) + "/_trayproxy/api/status", _headers(config_file))
    except (OSError, ValueError) as exc:
        print(f"trayproxy runs (pid {pid}) but does not answer at {url}: {exc}")
        return 1
    models = state.get("models", 0)
    print(
        f"trayproxy is running at {url} (pid {pid}): {models} model{'s' if models != 1 else ''}, "
        f"config {state.get('config') or '?'}."
    )
    providers = state.get("providers") or {}
    missing = sorted(
        n for n, p in providers.items() if isinstance(p, dict) and p.get("key_missing")
    )
    if missing:
        print(
            f"{needing_keys(len(missing))} (requests to them fail): {', '.join(missing)}. "
            "Store one with: trayproxy key set PROVIDER"
        )
    return 0


def stop(state_dir: Path, config_file: Path, wait: float = 15.0) -> int:
    lock = InstanceLock(state_dir)
    info = _running(lock)
    if info is None:
        print("trayproxy is not running.")
        return 0
    url, pid = info.get("url"), info.get("pid")
    asked = False
    if url:
        try:
            _call("POST", _root(url) + "/_trayproxy/api/actions/quit", _headers(config_file))
            asked = True
        except (OSError, ValueError):
            pass
    if not asked and isinstance(pid, int) and sys.platform != "win32":
        try:
            os.kill(pid, signal.SIGTERM)  # the same quit, asked another way
            asked = True
        except OSError:
            pass
    if not asked:
        print(f"error: cannot reach the running trayproxy (pid {pid}) to stop it", file=sys.stderr)
        return 1
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _running(lock) is None:
            print("trayproxy stopped.")
            return 0
        time.sleep(0.1)
    print(f"error: trayproxy (pid {pid}) is still running after {wait:g} s", file=sys.stderr)
    return 1
