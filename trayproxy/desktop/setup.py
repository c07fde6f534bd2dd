"""The commands that set trayproxy up on a desktop: ``trayproxy install-desktop`` (the
applications menu, Linux), ``trayproxy autostart`` (start at login) and ``trayproxy key``
(provider keys in the OS keychain, where an app started from the desktop finds them), as
the command line runs them."""

from __future__ import annotations

import sys
from pathlib import Path


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


def key_command(action: str, provider: str | None, config_file: Path) -> int:
    """``key set PROVIDER`` (a hidden prompt, or standard input when it is not a terminal),
    ``key delete PROVIDER``, ``key list`` (where each provider's key comes from, never it)."""
    from trayproxy.config import keys
    from trayproxy.config.describe import describe_keys
    from trayproxy.config.files import load_file
    from trayproxy.config.model import ConfigError

    try:
        config = load_file(config_file)
    except ConfigError as exc:
        if action == "list":
            print(f"error: {exc}", file=sys.stderr)
            return 1
        config = None
    if action == "list":
        assert config is not None
        print(describe_keys(config))
        return 0
    assert provider is not None
    if config is not None and provider not in config.providers:
        known = ", ".join(sorted(config.providers)) or "none"
        print(f"note: {config_file} has no [providers.{provider}] (it has: {known})")
    try:
        if action == "delete":
            if keys.forget(provider):
                print(f"Removed the key for '{provider}' from the OS keychain.")
            else:
                print(f"The OS keychain had no key for '{provider}'.")
            return 0
        value = _read_secret(f"Key for '{provider}' (not shown): ")
        keys.store(provider, value)
    except keys.KeyRefError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Stored the key for '{provider}' in the OS keychain (service 'trayproxy'). trayproxy "
        f'uses it when [providers.{provider}] has no api_key line, or api_key = "keyring:'
        f'{provider}"; Reload mappings (or save config.toml) to use it now.'
    )
    return 0


def _read_secret(prompt: str) -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.readline() if sys.stdin is not None else ""
