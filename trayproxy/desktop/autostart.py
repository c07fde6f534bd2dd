"""Start at login, per user: XDG autostart (Linux), a LaunchAgent (macOS), the Run key
(Windows). ``enabled()``, ``enable()`` and ``disable()`` raise OSError with a clear message."""

from __future__ import annotations

import os
import plistlib
import sys
from pathlib import Path

from trayproxy.desktop import desktop_entry
from trayproxy.desktop.launcher import launch_command

LAUNCH_AGENT = "dev.trayproxy.agent"
RUN_VALUE = "trayproxy"
_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def _xdg_autostart_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / "trayproxy.desktop"


def _launch_agent_file() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT}.plist"


def location() -> str:
    if sys.platform == "win32":
        return "HKCU\\" + _RUN_KEY + "\\" + RUN_VALUE
    if sys.platform == "darwin":
        return str(_launch_agent_file())
    return str(_xdg_autostart_file())


def enabled() -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, _RUN_KEY) as key:
                winreg.QueryValueEx(key, RUN_VALUE)
            return True
        except OSError:
            return False
    if sys.platform == "darwin":
        return _launch_agent_file().exists()
    return _xdg_autostart_file().exists()


def enable(command: list[str] | None = None) -> str:
    """Start trayproxy at login from now on. Returns where that was written."""
    command = command or launch_command()
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import subprocess
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, _RUN_KEY) as key:
            winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, subprocess.list2cmdline(command))
    elif sys.platform == "darwin":
        path = _launch_agent_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        plist = {
            "Label": LAUNCH_AGENT,
            "ProgramArguments": command,
            "RunAtLoad": True,
            "ProcessType": "Interactive",
        }
        path.write_bytes(plistlib.dumps(plist))
    else:
        path = _xdg_autostart_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(desktop_entry.render(command, autostart=True), encoding="utf-8")
    return location()


def disable() -> str:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, _RUN_KEY, 0, winreg.KEY_SET_VALUE) as k:
                winreg.DeleteValue(k, RUN_VALUE)
        except FileNotFoundError:
            pass
    elif sys.platform == "darwin":
        _launch_agent_file().unlink(missing_ok=True)
    else:
        _xdg_autostart_file().unlink(missing_ok=True)
    return location()
