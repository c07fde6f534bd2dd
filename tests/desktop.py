"""A real desktop for tray tests: Xvfb, a tray host (trayer), a DBus session, a notifier.

Debian packages: xvfb xauth trayer xdotool x11-utils xclip imagemagick dbus-daemon
notification-daemon gir1.2-gtk-3.0, and PyGObject in the test environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLS = ("Xvfb", "trayer", "xdotool", "xclip", "import", "dbus-run-session")
NOTIFIER = "/usr/lib/notification-daemon/notification-daemon"
ARTIFACTS = Path(__file__).parent / "artifacts"


def require_desktop_tools() -> None:
    """Fail (not skip) when the tools are missing: scripts/test.sh installs them."""
    if os.environ.get("TRAYPROXY_SKIP_DESKTOP_TESTS") == "1":
        pytest.skip("TRAYPROXY_SKIP_DESKTOP_TESTS=1")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    try:
        import gi  # noqa: F401
    except ImportError:
        missing.append("PyGObject (pip install 'PyGObject<3.51')")
    if missing:
        pytest.fail(
            "the real-tray tests need: " + ", ".join(missing) + ". Run `bash scripts/test.sh`, "
            "which installs them, or set TRAYPROXY_SKIP_DESKTOP_TESTS=1 to skip them."
        )


def wait_for(predicate, timeout: float = 15, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


@dataclass
class Desktop:
    display: str
    env: dict[str, str]
    procs: list[subprocess.Popen]

    def start_tray_host(self) -> None:
        # the panel at the bottom: notifications pop up at the top and must not cover the icon
        trayer = subprocess.Popen(
            [
                "trayer",
                "--edge",
                "bottom",
                "--align",
                "right",
                "--widthtype",
                "request",
                "--height",
                "32",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(trayer)
        assert wait_for(lambda: _tray_host_ready(self.display), 10), "trayer took no tray"

    def run(self, *cmd: str, timeout: float = 10) -> str:
        result = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return result.stdout

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.run("import", "-window", "root", str(path))
        return path

    def clipboard(self) -> str:
        return self.run("xclip", "-selection", "clipboard", "-o")

    def find_icon(self, *search: str) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of a docked icon window: 16-64 px, not GTK's 10x10 leader."""
        for wid in self.run("xdotool", "search", *search).split():
            geo = self.run("xdotool", "getwindowgeometry", "--shell", wid)
            values = dict(line.split("=", 1) for line in geo.split() if "=" in line)
            try:
                x, y = int(values["X"]), int(values["Y"])
                w, h = int(values["WIDTH"]), int(values["HEIGHT"])
            except (KeyError, ValueError):
                continue
            if 16 <= w <= 64 and 16 <= h <= 64 and x >= 0 and y >= 0:
                return x, y, w, h
        return None

    def windows(self, *search: str) -> list[tuple[int, int, int, int]]:
        found = []
        for wid in self.run("xdotool", "search", *search).split():
            geo = self.run("xdotool", "getwindowgeometry", "--shell", wid)
            values = dict(line.split("=", 1) for line in geo.split() if "=" in line)
            try:
                found.append(
                    (
                        int(values["X"]),
                        int(values["Y"]),
                        int(values["WIDTH"]),
                        int(values["HEIGHT"]),
                    )
                )
            except (KeyError, ValueError):
                continue
        return found

    def open_menu(self, x: int, y: int, classname: str = "^trayproxy$") -> bool:
        """Right-click until the app's popup menu is mapped (the icon may not be ready)."""

        def menu_is_open() -> bool:
            visible = self.windows("--onlyvisible", "--classname", classname)
            return any(w > 100 and h > 60 for _, _, w, h in visible)

        def attempt() -> bool:
            self.click(x, y, 3)
            return bool(wait_for(menu_is_open, 2))

        opened = bool(wait_for(attempt, 15, interval=0))
        time.sleep(0.3)  # let it draw
        return opened

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.run("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("xdotool", "key", key)
            time.sleep(0.15)


def _free_display() -> int:
    for n in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@contextmanager
def desktop_session(tray_host: bool = True) -> Iterator[Desktop]:
    require_desktop_tools()
    n = _free_display()
    display = f":{n}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [xvfb]
    try:
        assert wait_for(lambda: Path(f"/tmp/.X11-unix/X{n}").exists(), 10), "Xvfb did not start"
        env = {**os.environ, "DISPLAY": display, "NO_AT_BRIDGE": "1"}
        env.pop("WAYLAND_DISPLAY", None)
        desktop = Desktop(display, env, procs)
        if tray_host:
            desktop.start_tray_host()
        yield desktop
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _tray_host_ready(display: str) -> bool:
    """A tray host owns the system tray selection of screen 0."""
    from Xlib import display as xdisplay

    try:
        d = xdisplay.Display(display)
    except Exception:
        return False
    try:
        atom = d.intern_atom("_NET_SYSTEM_TRAY_S0")
        return d.get_selection_owner(atom) != 0
    finally:
        d.close()


def group_is_gone(pgid: int) -> bool:
    """True when no process of the group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def app_command(*args: str) -> list[str]:
    """trayproxy in a DBus session with a notification daemon, as on a real desktop."""
    script = f'{NOTIFIER} >/dev/null 2>&1 & exec "{sys.executable}" -m trayproxy "$@"'
    return ["dbus-run-session", "--", "sh", "-c", script, "trayproxy", *args]
