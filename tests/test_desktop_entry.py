"""The Linux launcher and start-at-login entries: written for this user, valid, removable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trayproxy.desktop import autostart, desktop_entry
from trayproxy.desktop.launcher import desktop_exec, launch_command


def validate(path: Path) -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.fail("desktop-file-validate is missing (Debian package desktop-file-utils)")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trayproxy", *args], capture_output=True, text=True, timeout=60
    )


def test_install_desktop_and_uninstall() -> None:
    data = Path(os.environ["XDG_DATA_HOME"])
    out = run("install-desktop")
    assert out.returncode == 0, out.stderr
    entry = data / "applications" / "trayproxy.desktop"
    assert f"Added trayproxy to the applications menu: {entry}" in out.stdout
    validate(entry)
    text = entry.read_text()
    assert "Icon=trayproxy" in text and "Terminal=false" in text
    for size in (16, 48, 128, 256):
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "trayproxy.png").is_file()
    out = run("install-desktop", "--uninstall")
    assert out.returncode == 0 and not entry.exists()
    assert not (data / "icons" / "hicolor" / "128x128" / "apps" / "trayproxy.png").exists()


def test_autostart_entry_is_valid_and_starts_this_trayproxy() -> None:
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "trayproxy.desktop"
    assert run("autostart").stdout.startswith("start at login: off")
    assert run("autostart", "on").returncode == 0
    validate(entry)
    assert autostart.enabled()
    exec_line = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))
    assert exec_line == "Exec=" + desktop_exec(launch_command())
    assert "X-GNOME-Autostart-enabled=true" in entry.read_text()
    assert run("autostart").stdout.startswith("start at login: on")
    assert run("autostart", "off").returncode == 0
    assert not entry.exists()


def test_exec_quoting() -> None:
    assert desktop_exec(["/opt/my apps/trayproxy"]) == '"/opt/my apps/trayproxy"'
    assert desktop_exec(["/usr/bin/python3", "-m", "trayproxy"]) == "/usr/bin/python3 -m trayproxy"
    assert desktop_exec(["/a/100%/b"]) == "/a/100%%/b"


def test_render_has_the_required_keys() -> None:
    text = desktop_entry.render(["/usr/bin/trayproxy"])
    for key in ("Type=Application", "Name=trayproxy", "Exec=/usr/bin/trayproxy"):
        assert key in text
