"""The Linux launcher: a .desktop entry and icons for the current user
(``trayproxy install-desktop`` / ``--uninstall``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from trayproxy.desktop.icons import ICON, asset
from trayproxy.desktop.launcher import desktop_exec, launch_command

APP_ID = "trayproxy"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(command: list[str], *, autostart: bool = False) -> str:
    lines = [
        "[Desktop Entry]",
        "Version=1.0",
        "Type=Application",
        "Name=trayproxy",
        "GenericName=LLM gateway",
        "Comment=Local OpenAI-compatible gateway for your coding assistant",
        f"Exec={desktop_exec(command)}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Development;",
        "Keywords=LLM;OpenAI;proxy;Continue;gateway;",
        "StartupNotify=false",
    ]
    if autostart:
        lines.append("X-GNOME-Autostart-enabled=true")
    return "\n".join(lines) + "\n"


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def entry_path() -> Path:
    return _data_home() / "applications" / f"{APP_ID}.desktop"


def icon_path(size: int) -> Path:
    return _data_home() / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


def install(command: list[str] | None = None) -> list[Path]:
    """Write the entry and the icons; returns what was written."""
    from PIL import Image

    written = []
    with asset(ICON).open("rb") as fh:
        source = Image.open(fh).convert("RGBA")
        source.load()
    for size in ICON_SIZES:
        path = icon_path(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        source.resize((size, size), Image.Resampling.LANCZOS).save(path)
        written.append(path)
    entry = entry_path()
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(render(command or launch_command()), encoding="utf-8")
    written.append(entry)
    _refresh()
    return written


def uninstall() -> list[Path]:
    removed = []
    for path in [entry_path(), *(icon_path(s) for s in ICON_SIZES)]:
        if path.exists():
            path.unlink()
            removed.append(path)
    _refresh()
    return removed


def _refresh() -> None:
    """Tell the desktop (when its tools are there); harmless when they are not."""
    for cmd in (
        ["update-desktop-database", str(entry_path().parent)],
        ["gtk-update-icon-cache", "-q", "-t", str(_data_home() / "icons" / "hicolor")],
    ):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, capture_output=True, check=False, timeout=30)
