"""Key references (``env:NAME``, ``keyring:NAME``, a literal value) resolved to secrets: the
only module that reads the environment or the OS keychain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from trayproxy.config.model import KeyRef
from trayproxy.core.secret import Secret


class KeyRefError(ValueError):
    pass


def resolve(raw: str, environ: Mapping[str, str] | None = None) -> KeyRef:
    """``env:NAME`` or ``keyring:NAME`` (read now), a literal value, or "" for none. The
    environment is ``environ`` when given (tests), else the process's."""
    if environ is None:
        environ = os.environ
    if raw.startswith("env:"):
        name = raw[4:].strip()
        if not name:
            raise KeyRefError('names no variable: write "env:NAME"')
        value = _sendable(environ.get(name, "").strip(), f"the environment variable {name}")
        return KeyRef(f"env:{name}", Secret(value) if value else None)
    if raw.startswith("keyring:"):
        name = raw[8:].strip()
        if not name:
            raise KeyRefError('names no entry: write "keyring:NAME"')
        return KeyRef(f"keyring:{name}", _from_keyring(name))
    if not raw:
        return KeyRef("none")
    return KeyRef("literal", Secret(_sendable(raw, "the value")))


def _sendable(value: str, what: str) -> str:
    """``value``, if it can go in an HTTP header (keys and tokens do)."""
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise KeyRefError(f"{what} holds a line break or control character")
    return value


KEYRING_SERVICE = "trayproxy"


def _from_keyring(name: str) -> Secret | None:
    """The OS keychain entry (service "trayproxy", user NAME), via the keyring package."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise KeyRefError(
            "keyring: references need the keyring package (pip install keyring)"
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise KeyRefError(
            f"the OS keychain cannot be read ({type(exc).__name__}: {exc}); use env:NAME "
            "instead, or install a keyring backend"
        ) from None
    value = _sendable((value or "").strip(), f"the keychain entry {name!r}")
    return Secret(value) if value else None
