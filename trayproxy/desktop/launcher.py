"""How to start trayproxy again: for the desktop entry and for start at login."""

from __future__ import annotations

import sys
from pathlib import Path


def launch_command() -> list[str]:
    """The command that starts this trayproxy: the bundle's executable, the installed
    ``trayproxy`` script next to this Python, or ``python -m trayproxy``."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = Path(sys.executable).parent / (
        "trayproxy.exe" if sys.platform == "win32" else "trayproxy"
    )
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "trayproxy"]


def desktop_exec(command: list[str]) -> str:
    """``Exec=`` value for a .desktop file (quoted per the Desktop Entry spec)."""
    out = []
    for arg in command:
        if any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
            escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
            escaped = escaped.replace("$", "\\$")
            out.append(f'"{escaped}"')
        else:
            out.append(arg)
    return " ".join(out).replace("%", "%%")
