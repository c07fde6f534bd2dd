"""One trayproxy per user, checked with real processes: the lock is the OS's, so only other
processes can show that it holds, that it says where the holder serves, and that a holder
killed with SIGKILL (no clean-up ran) leaves nothing that blocks the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trayproxy.desktop.instance import INFO_NAME, LOCK_NAME, InstanceLock

URL = "http://127.0.0.1:8765/v1"

# Holds the lock, records URL, says so, then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from trayproxy.desktop.instance import InstanceLock
lock = InstanceLock(Path(sys.argv[1]))
if not lock.acquire():
    print("busy", flush=True)
    sys.exit(3)
lock.publish(sys.argv[2])
print("held", flush=True)
time.sleep(60)
"""

# One try, as a second start makes it: prints what it got and what the holder recorded.
SECOND = """
import json, sys
from pathlib import Path
from trayproxy.desktop.instance import InstanceLock
lock = InstanceLock(Path(sys.argv[1]))
got = lock.acquire()
print(json.dumps({"acquired": got, "info": lock.running_info()}))
if got:
    lock.release()
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(_python(HOLDER, str(tmp_path), URL), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _second_start(state_dir: Path) -> dict:
    out = subprocess.run(
        _python(SECOND, str(state_dir)), capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(out.stdout)


def _sigkill(proc: subprocess.Popen[str]) -> None:
    if sys.platform == "win32":  # pragma: no cover - TerminateProcess is as abrupt
        proc.kill()
        proc.wait(timeout=10)
        return
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def test_a_second_process_cannot_take_the_lock_and_reads_where_the_first_serves(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    second = _second_start(tmp_path)
    assert second["acquired"] is False
    assert second["info"] == {"pid": holder.pid, "url": URL}
    # this process is another one too
    lock = InstanceLock(tmp_path)
    assert not lock.acquire()
    assert lock.running_info()["url"] == URL


def test_a_holder_killed_with_sigkill_does_not_block_the_next_start(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert _second_start(tmp_path)["acquired"] is False
    _sigkill(holder)
    # nothing was cleaned up: the lock file and the dead holder's record are still there
    assert (tmp_path / LOCK_NAME).exists()
    assert json.loads((tmp_path / INFO_NAME).read_text())["pid"] == holder.pid
    assert _second_start(tmp_path)["acquired"] is True
    # and a new holder takes over, recording its own URL over the stale one
    new_url = "http://127.0.0.1:9999/v1"
    proc = subprocess.Popen(
        _python(HOLDER, str(tmp_path), new_url), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        second = _second_start(tmp_path)
        assert second == {"acquired": False, "info": {"pid": proc.pid, "url": new_url}}
    finally:
        _sigkill(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def test_release_lets_another_process_start_and_removes_the_record(tmp_path: Path) -> None:
    lock = InstanceLock(tmp_path / "new" / "state")  # the folder is created on acquire
    assert lock.acquire()
    assert lock.acquire()  # taking it again is a no-op, not a second hold
    lock.publish(URL)
    assert _second_start(lock.dir) == {
        "acquired": False,
        "info": {"pid": os.getpid(), "url": URL},
    }
    lock.release()
    assert not lock.info_path.exists()
    assert _second_start(lock.dir) == {"acquired": True, "info": {}}
    lock.release()  # releasing twice is harmless


def test_release_from_another_thread_frees_the_lock(tmp_path: Path) -> None:
    # the CLI takes the lock on the main thread; App.shutdown may release it on another
    lock = InstanceLock(tmp_path)
    assert lock.acquire()
    worker = threading.Thread(target=lock.release)
    worker.start()
    worker.join(timeout=10)
    assert _second_start(tmp_path)["acquired"] is True


def test_trayproxy_serve_says_where_the_running_one_serves(tmp_path: Path) -> None:
    home = tmp_path / "home"  # TRAYPROXY_HOME, set by conftest; the state folder under it
    state_dir = home / "state"
    proc = subprocess.Popen(_python(HOLDER, str(state_dir), URL), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        out = subprocess.run(
            [sys.executable, "-m", "trayproxy", "serve"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TRAYPROXY_HOME": str(home)},
        )
        assert out.returncode == 0, out.stderr
        assert f"trayproxy is already running at {URL}." in out.stdout
    finally:
        _sigkill(proc)
        assert proc.stdout is not None
        proc.stdout.close()
