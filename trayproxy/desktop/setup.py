"""The commands that add trayproxy to a desktop: ``trayproxy install-desktop`` (the
applications menu, Linux) and ``trayproxy autostart`` (start at login), as the command line
runs them."""

from __future__ import annotations

import sys


def install_desktop_command(uninstall: bool) -> int:
    from trayproxy.desktop import desktop_entry

    if not sys.platform.startswith("linux"):
        print("install-desktop is for Linux; see the README's Install section for your OS.")
        return 1
    if uninstall:
        removed = desktop_entry.uninstall()
        print("Removed " + (", ".join(map(str, removed)) if removed else "nothing"))
        return 0
    written = desktop_entry.install()
    print(f"Added trayproxy to the applications menu: {written[-1]}")
    return 0


def autostart_command(state: str) -> int:
    from trayproxy.desktop import autostart

    try:
        if state == "on":
            print(f"trayproxy will start at login ({autostart.enable()})")
        elif state == "off":
            print(f"trayproxy will not start at login ({autostart.disable()})")
        else:
            on = autostart.enabled()
            print(f"start at login: {'on' if on else 'off'} ({autostart.location()})")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
