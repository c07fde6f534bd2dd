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


def _keychain_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHON_KEYRING_BACKEND"] = "tests.file_keyring.FileKeyring"
    env["TRAYPROXY_TEST_KEYRING"] = str(tmp_path / "keychain.json")
    return env


def _trayproxy(env: dict[str, str], *args: str, stdin: str = ""):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "trayproxy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parent.parent,
    )


def test_a_key_stored_with_the_command_reaches_a_provider_without_an_api_key_line(
    tmp_path: Path,
) -> None:
    """`trayproxy key set nvidia` (from standard input here) puts the key in the keychain; a
    provider with no api_key line then finds it there, and `key list` and `check` say where
    it came from, never what it is."""
    config = tmp_path / "config.toml"
    config.write_text('[providers.nvidia]\nbase_url = "https://integrate.api.nvidia.com/v1"\n')
    env = _keychain_env(tmp_path)
    before = _trayproxy(env, "key", "list", "--config", str(config))
    assert "no api_key line: none in the keychain or $NVIDIA_API_KEY" in before.stdout
    stored = _trayproxy(env, "key", "set", "nvidia", "--config", str(config), stdin="nvapi-s3\n")
    assert stored.returncode == 0, stored.stderr
    assert "Stored the key for 'nvidia' in the OS keychain" in stored.stdout
    listed = _trayproxy(env, "key", "list", "--config", str(config))
    assert "keychain entry nvidia (found)" in listed.stdout
    check = _trayproxy(env, "check", "--config", str(config))
    assert check.returncode == 0 and "keychain entry nvidia (found)" in check.stdout
    assert "Providers without a key" not in check.stdout
    for out in (stored, listed, check):
        assert "nvapi-s3" not in out.stdout + out.stderr
    gone = _trayproxy(env, "key", "delete", "nvidia", "--config", str(config))
    assert "Removed the key for 'nvidia'" in gone.stdout
    again = _trayproxy(env, "key", "delete", "nvidia", "--config", str(config))
    assert "had no key for 'nvidia'" in again.stdout


def test_without_a_keychain_the_error_says_what_to_do_instead(tmp_path: Path) -> None:
    env = _keychain_env(tmp_path)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    config = tmp_path / "config.toml"
    config.write_text('[providers.groq]\nbase_url = "https://api.groq.com/openai/v1"\n')
    out = _trayproxy(env, "key", "set", "groq", "--config", str(config), stdin="gsk-x\n")
    assert out.returncode == 1
    assert "no keychain trayproxy can use" in out.stderr
    assert 'api_key = "env:NAME"' in out.stderr and "Traceback" not in out.stderr


def test_no_api_key_line_reads_the_conventional_variable() -> None:
    text = '[providers.groq]\nbase_url = "https://api.groq.com/openai/v1"\n'
    config = parse(text, environ={"GROQ_API_KEY": "gsk-from-env"})
    key = config.providers["groq"].api_key
    assert key.source == "env:GROQ_API_KEY" and key.secret.reveal() == "gsk-from-env"
    local = parse(text.replace("groq", "ollama"), environ={}).providers["ollama"].api_key
    assert local.secret is None and not local.missing  # a local server needs none
    empty = parse(text.replace('/v1"\n', '/v1"\napi_key = ""\n'), environ={"GROQ_API_KEY": "x"})
    assert empty.providers["groq"].api_key.source == "none"  # "" says: no key, do not look


@pytest.mark.parametrize("written", ["$NVIDIA_API_KEY", "${NVIDIA_API_KEY}", "NVIDIA_API_KEY"])
def test_a_variable_name_written_as_the_key_is_warned_about(written: str) -> None:
    text = f'[providers.nvidia]\nbase_url = "https://x/v1"\napi_key = "{written}"\n'
    config = parse(text, file="config.toml", environ={})
    assert config.warnings == (
        "config.toml:3: providers.nvidia.api_key: looks like the name of a variable, not a "
        'key: write "env:NVIDIA_API_KEY" to read it from the environment',
    )
    real = parse(text.replace(written, "nvapi-abcdef123"), file="config.toml", environ={})
    assert real.warnings == ()
