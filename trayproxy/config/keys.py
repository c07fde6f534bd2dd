"""Key references (``env:NAME``, ``keyring:NAME``, a literal value): what a config value
names (``reference``, pure, used while parsing) and the secrets they name (``resolve``, run
on a parsed config): the only module that reads the environment or the OS keychain.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from trayproxy.config.lines import format_key_path, line_of
from trayproxy.config.model import Config, ConfigError, KeyRef, Provider
from trayproxy.core.secret import Secret


class KeyRefError(ValueError):
    pass


def conventional_env(provider: str) -> str:
    """The environment variable a provider's key is usually in: ``NVIDIA_API_KEY``."""
    return re.sub(r"[^A-Z0-9]", "_", provider.upper()) + "_API_KEY"


def automatic(provider: str, at: tuple[str, ...]) -> KeyRef:
    """A provider without an ``api_key`` line: its keychain entry (named after it), else its
    conventional environment variable, else no key (a local server needs none)."""
    return KeyRef(f"auto:{conventional_env(provider)}", None, at)


# What a key that was meant as a reference looks like when written as a literal value.
_SHELL_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*_(API_)?(KEY|TOKEN)")


def looks_meant_as_reference(raw: str) -> str | None:
    """The reference a literal value was probably meant to be (``"$NVIDIA_API_KEY"`` or
    ``"NVIDIA_API_KEY"`` for ``"env:NVIDIA_API_KEY"``), or None."""
    found = _SHELL_VARIABLE.fullmatch(raw)
    if found:
        return f"env:{found.group(1)}"
    if _ENV_NAME.fullmatch(raw):
        return f"env:{raw}"
    return None


def reference(raw: str, at: tuple[str, ...]) -> KeyRef:
    """What a config value names, unresolved (pure): ``env:NAME``, ``keyring:NAME``, a
    literal value, or "" for none. Raises :class:`KeyRefError` for a malformed one."""
    if raw.startswith("env:"):
        if not raw[4:].strip():
            raise KeyRefError('names no variable: write "env:NAME"')
        return KeyRef(f"env:{raw[4:].strip()}", None, at)
    if raw.startswith("keyring:"):
        if not raw[8:].strip():
            raise KeyRefError('names no entry: write "keyring:NAME"')
        return KeyRef(f"keyring:{raw[8:].strip()}", None, at)
    if not raw:
        return KeyRef("none", None, at)
    return KeyRef("literal", Secret(_sendable(raw, "the value")), at)


def resolve(config: Config, text: str, environ: Mapping[str, str] | None = None) -> Config:
    """``config`` with every ``env:`` and ``keyring:`` reference read now: from ``environ``
    when given (tests), else the process's environment, and from the OS keychain. A problem
    is a :class:`ConfigError` at the reference's line in ``text``."""
    env = os.environ if environ is None else environ

    def fail(ref: KeyRef, problem: str) -> ConfigError:
        return ConfigError(
            problem,
            file=config.source,
            line=line_of(text, ref.at),
            key=format_key_path(ref.at),
        )

    def read(ref: KeyRef, provider: str = "") -> KeyRef:
        kind, _, name = ref.source.partition(":")
        if kind == "auto":  # the keychain entry named after the provider, then the variable
            try:
                stored = _from_keyring(provider)
            except KeyRefError:  # no keychain here: the variable, or no key
                stored = None
            if stored is not None:
                return KeyRef(f"keyring:{provider}", stored, ref.at, automatic=True)
            value = env.get(name, "").strip()
            if value:
                try:
                    secret = Secret(_sendable(value, f"the environment variable {name}"))
                except KeyRefError as exc:
                    raise fail(ref, str(exc)) from None
                return KeyRef(f"env:{name}", secret, ref.at, automatic=True)
            return KeyRef(ref.source, None, ref.at)
        try:
            if kind == "env":
                value = _sendable(env.get(name, "").strip(), f"the environment variable {name}")
                return KeyRef(ref.source, Secret(value) if value else None, ref.at)
            if kind == "keyring":
                return KeyRef(ref.source, _from_keyring(name), ref.at)
        except KeyRefError as exc:
            raise fail(ref, str(exc)) from None
        return ref

    def read_keys(p: Provider) -> Provider:
        headers = tuple((header, read(ref)) for header, ref in p.headers)
        if not p.api_keys:
            return replace(p, api_key=read(p.api_key, p.name), headers=headers)
        several = tuple(replace(key, ref=read(key.ref)) for key in p.api_keys)
        return replace(p, api_key=several[0].ref, api_keys=several, headers=headers)

    providers = {name: read_keys(p) for name, p in config.providers.items()}
    token = read(config.server.token)
    if token.missing:
        raise fail(token, f"reads {token.source}, which is not set")
    if token.secret is not None and len(token.secret.reveal()) < 16:
        raise fail(token, "must be at least 16 characters long")
    return replace(
        config,
        providers=MappingProxyType(providers),
        server=replace(config.server, token=token),
    )


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


NO_KEYCHAIN = (
    "this system has no keychain trayproxy can use ({why}). Put the key in config.toml "
    'itself, which only you can read (api_key = "the key" under [providers.{name}]), or in '
    'an environment variable (api_key = "env:{env}") if trayproxy is started from a shell '
    "that sets it"
)


def _no_keychain(name: str, exc: BaseException | None = None) -> KeyRefError:
    if exc is None:
        why = "the keyring package is missing"
    elif type(exc).__name__ == "NoKeyringError":
        why = (
            "no keychain service is running; on Linux a desktop session's GNOME Keyring or "
            "KWallet provides one"
        )
    else:
        why = f"{type(exc).__name__}: {exc}"
    return KeyRefError(NO_KEYCHAIN.format(why=why, name=name, env=conventional_env(name)))


def _keychain(name: str):
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise _no_keychain(name) from None
    return keyring


def store(name: str, value: str) -> None:
    """Put ``value`` in the OS keychain as ``name`` (service "trayproxy")."""
    keyring = _keychain(name)
    value = _sendable(value.strip(), "the key")
    if not value:
        raise KeyRefError("the key is empty")
    try:
        keyring.set_password(KEYRING_SERVICE, name, value)
    except keyring.errors.KeyringError as exc:
        raise _no_keychain(name, exc) from None


def forget(name: str) -> bool:
    """Remove ``name`` from the keychain; False when it was not there."""
    keyring = _keychain(name)
    try:
        keyring.delete_password(KEYRING_SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise _no_keychain(name, exc) from None
    return True
