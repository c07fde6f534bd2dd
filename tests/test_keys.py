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
    assert "needs a key" in before.stdout
    stored = _trayproxy(env, "key", "set", "nvidia", "--config", str(config), stdin="nvapi-s3\n")
    assert stored.returncode == 0, stored.stderr
    assert "Stored the key for 'nvidia' in the OS keychain" in stored.stdout
    listed = _trayproxy(env, "key", "list", "--config", str(config))
    assert "keychain entry nvidia (found)" in listed.stdout
    check = _trayproxy(env, "check", "--config", str(config))
    assert check.returncode == 0 and "keychain entry nvidia (found)" in check.stdout
    assert "need a key" not in check.stdout and "needs a key" not in check.stdout
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
    assert "no keychain trayproxy can use (no keychain service is running" in out.stderr
    assert 'api_key = "env:GROQ_API_KEY"' in out.stderr and "[providers.groq]" in out.stderr
    assert "Traceback" not in out.stderr


def test_no_api_key_line_reads_the_conventional_variable() -> None:
    text = '[providers.groq]\nbase_url = "https://api.groq.com/openai/v1"\n'
    config = parse(text, environ={"GROQ_API_KEY": "gsk-from-env"})
    key = config.providers["groq"].api_key
    assert key.source == "env:GROQ_API_KEY" and key.secret.reveal() == "gsk-from-env"
    unset = parse(text, environ={}).providers["groq"]
    assert unset.api_key.secret is None and unset.needs_key  # a hosted provider does
    for url in ("http://localhost:11434/v1", "http://192.168.1.20:8080/v1", "http://[::1]:1/v1"):
        local = parse(f'[providers.ollama]\nbase_url = "{url}"\n', environ={})
        assert not local.providers["ollama"].needs_key, url  # a server here takes none
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


def test_the_keys_api_takes_a_key_only_from_the_page_and_never_gives_one_back(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring
    from keyring.backends import fail

    from tests.conftest import http, post_json
    from tests.file_keyring import FileKeyring

    monkeypatch.setenv("TRAYPROXY_TEST_KEYRING", str(tmp_path / "keychain.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    extra = (
        '[providers.kc]\nbase_url = "https://api.example.com/v1"\napi_key = "keyring:kc-entry"\n'
    )
    server = serve(extra=extra)
    keys_url = server.root_url + "/_trayproxy/api/keys"
    try:
        status, _, body = http("GET", keys_url)
        listed = {p["name"]: p for p in __import__("json").loads(body)["providers"]}
        assert listed["kc"]["needs_key"] and listed["kc"]["keychain_entry"] == "kc-entry"
        assert listed["fake"]["keychain_entry"] is None  # a literal key in config.toml
        assert not listed["fake"]["needs_key"]

        cross = post_json(keys_url + "/kc", {"key": "k1"}, {"Origin": "https://evil.example"})
        assert cross[0] == 403
        form = http("POST", keys_url + "/kc", b"key=k1", {"Content-Type": "text/plain"})
        assert form[0] == 415
        assert post_json(keys_url + "/nosuch", {"key": "k1"})[0] == 404
        assert post_json(keys_url + "/kc", {"key": "  "})[0] == 400
        elsewhere = post_json(keys_url + "/nokey", {"key": "k1"})
        assert elsewhere[0] == 409 and b"remove that api_key line" in elsewhere[2]
        assert keyring.get_password("trayproxy", "kc-entry") is None  # nothing stored so far

        status, _, body = post_json(keys_url + "/kc", {"key": "kc-secret-1"})
        assert status == 200 and b"Reload mappings to use it" in body  # no App: no reload
        assert b"kc-secret-1" not in body
        assert keyring.get_password("trayproxy", "kc-entry") == "kc-secret-1"

        keyring.set_keyring(fail.Keyring())
        status, _, body = post_json(keys_url + "/kc", {"key": "kc-secret-2"})
        assert status == 503 and b"no keychain trayproxy can use" in body
        assert b"kc-secret-2" not in body
    finally:
        keyring.set_keyring(previous)


def test_the_keys_panel_offers_the_keychain_for_a_key_found_in_the_usual_variable() -> None:
    """No api_key line, key found in $GROQ_API_KEY: a key stored in the keychain would be
    read first, so the panel offers to store one (not "remove the api_key line")."""
    from trayproxy.page.keys import keychain_entry

    text = '[providers.groq]\nbase_url = "https://api.groq.com/openai/v1"\n'
    provider = parse(text, environ={"GROQ_API_KEY": "gsk-x"}).providers["groq"]
    assert provider.api_key.source == "env:GROQ_API_KEY" and provider.api_key.automatic
    assert keychain_entry(provider) == "groq"
    written = parse(text + 'api_key = "env:GROQ_API_KEY"\n', environ={"GROQ_API_KEY": "g"})
    assert keychain_entry(written.providers["groq"]) is None
