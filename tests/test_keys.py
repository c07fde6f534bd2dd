"""Where provider keys come from and who can read them: the OS keychain (``keyring:``), and
a config file readable by others."""

from __future__ import annotations

from pathlib import Path

import pytest

from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse


def test_keyring_references(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            return {("trayproxy", "nvidia"): "nvapi-from-keychain"}.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            raise NotImplementedError

        def delete_password(self, service: str, username: str) -> None:
            raise NotImplementedError

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        text = '[providers.nvidia]\nbase_url = "https://x/v1"\napi_key = "keyring:nvidia"\n'
        config = parse(text)
        assert config.providers["nvidia"].api_key.secret.reveal() == "nvapi-from-keychain"
        assert "nvapi-from-keychain" not in repr(config)
        missing = parse(text.replace("keyring:nvidia", "keyring:other"))
        assert missing.providers["nvidia"].api_key.missing
    finally:
        keyring.set_keyring(previous)


def test_keyring_without_a_backend_is_a_clear_error() -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(ConfigError, match="OS keychain cannot be read"):
            parse('[providers.a]\nbase_url = "https://x/v1"\napi_key = "keyring:a"\n')
    finally:
        keyring.set_keyring(previous)


def test_config_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    from trayproxy.config.files import permission_warning

    path = tmp_path / "config.toml"
    path.write_text("")
    path.chmod(0o644)
    assert "readable by other users (mode 644)" in (permission_warning(path) or "")
    path.chmod(0o600)
    assert permission_warning(path) is None
