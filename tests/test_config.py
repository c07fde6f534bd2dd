from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trayproxy.config import paths
from trayproxy.config.files import ensure_config_file, load_file, template_text
from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.core.secret import Secret

SEED = """\
[server]
host = "127.0.0.1"
port = 8000

[providers.nvidia]
base_url = "https://integrate.api.nvidia.com/v1"
api_key = "env:NVIDIA_API_KEY"     # "env:NAME", or a literal key

[models."nvidia/kimi-k2-thinking"]
provider = "nvidia"
model = "moonshotai/kimi-k2-thinking"
max_context_size = 262144
"""


def error_of(text: str, file: str = "cfg.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, file=file, environ={})
    return info.value


def test_seed_format_keeps_working() -> None:
    config = parse(SEED, file="config.toml", environ={"NVIDIA_API_KEY": "nvapi-abc"})
    assert config.server.host == "127.0.0.1" and config.server.port == 8000
    nvidia = config.providers["nvidia"]
    assert nvidia.base_url == "https://integrate.api.nvidia.com/v1"
    assert nvidia.api_key.secret == Secret("nvapi-abc")
    mapping = config.models["nvidia/kimi-k2-thinking"]
    assert (mapping.provider, mapping.model, mapping.max_context_size) == (
        "nvidia",
        "moonshotai/kimi-k2-thinking",
        262144,
    )
    assert config.server.max_body_mb == 64


def test_a_key_that_cannot_go_in_a_header_is_a_config_error() -> None:
    """A line break inside a key would be refused by the HTTP client on every request: the
    config says so at once, naming file, line and key, and never echoes the value."""
    with pytest.raises(ConfigError) as info:
        parse(SEED, file="config.toml", environ={"NVIDIA_API_KEY": "nvapi-abc\nsecond-line"})
    text = str(info.value)
    assert "config.toml:7" in text and "api_key" in text and "NVIDIA_API_KEY" in text
    assert "line break" in text and "nvapi-abc" not in text


def test_max_answer_mb_is_read_and_checked() -> None:
    config = parse(SEED.replace("port = 8000", "port = 8000\nmax_answer_mb = 8"), environ={})
    assert config.server.max_answer_bytes == 8 * 1024 * 1024
    assert parse(SEED, environ={}).server.max_answer_mb == 64
    error = error_of(SEED.replace("port = 8000", "port = 8000\nmax_answer_mb = 0"))
    assert "max_answer_mb" in str(error) and "cfg.toml:4" in str(error)


def test_key_from_unset_env_is_reported_missing() -> None:
    config = parse(SEED, environ={})
    key = config.providers["nvidia"].api_key
    assert key.missing
    assert key.describe() == "$NVIDIA_API_KEY (not set)"


def test_literal_key_and_header_values_never_show() -> None:
    text = SEED.replace('"env:NVIDIA_API_KEY"', '"nvapi-LITERAL-999"').replace(
        'base_url = "https://integrate.api.nvidia.com/v1"',
        'base_url = "https://integrate.api.nvidia.com/v1"\n'
        'headers = { "X-Custom-Auth" = "hdr-SECRET-1" }',
    )
    config = parse(text, environ={})
    shown = repr(config) + str(config.providers) + repr(config.providers["nvidia"].headers)
    assert "nvapi-LITERAL-999" not in shown
    assert "hdr-SECRET-1" not in shown
    assert config.providers["nvidia"].api_key.secret is not None
    assert config.providers["nvidia"].api_key.secret.reveal() == "nvapi-LITERAL-999"
    assert str(Secret("abc")) == "**********"


def test_model_defaults_to_its_id() -> None:
    config = parse(SEED + '\n[models."deepseek-chat"]\nprovider = "nvidia"\n', environ={})
    assert config.models["deepseek-chat"].model == "deepseek-chat"


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (
            SEED.replace("port = 8000", "port = 8000\nprot = 1"),
            4,
            "server.prot",
            "did you mean 'port'",
        ),
        (SEED.replace("port = 8000", 'port = "x"'), 3, "server.port", "must be an integer"),
        (SEED.replace("port = 8000", "port = 70000"), 3, "server.port", "between 0 and 65535"),
        (
            SEED.replace('provider = "nvidia"', 'provider = "nvida"'),
            10,
            'models."nvidia/kimi-k2-thinking".provider',
            "not configured",
        ),
        (
            SEED.replace("https://integrate", "ftp://integrate"),
            6,
            "providers.nvidia.base_url",
            "http:// or https://",
        ),
        (
            SEED.replace("max_context_size", "max_ctx"),
            12,
            'models."nvidia/kimi-k2-thinking".max_ctx',
            "unknown key",
        ),
        (SEED + "\n[extra]\na = 1\n", 14, "extra", "unknown key"),
        (
            SEED.replace('api_key = "env:NVIDIA_API_KEY"', "api_key = 5"),
            7,
            "providers.nvidia.api_key",
            "must be a string",
        ),
    ],
)
def test_errors_name_file_line_and_key(text: str, line: int, key: str, words: str) -> None:
    err = error_of(text)
    assert err.file == "cfg.toml"
    assert err.line == line, str(err)
    assert err.key == key
    assert words in str(err)
    assert str(err).startswith(f"cfg.toml:{line}: {key}: ")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1/v1", "not a valid URL"),
        ("https://x:99999/v1", "not a valid URL"),
        ("https://x:abc/v1", "not a valid URL"),
        ("https://api example.com/v1", "spaces or control characters"),
        ("https://user:pw@example.com/v1", "must not carry credentials"),
        ("https://example.com/v1?key=1", "query string"),
    ],
)
def test_bad_base_urls_are_config_errors(url: str, words: str) -> None:
    err = error_of(SEED.replace("https://integrate.api.nvidia.com/v1", url))
    assert err.line == 6 and err.key == "providers.nvidia.base_url"
    assert words in str(err)


def test_header_values_are_checked() -> None:
    text = SEED.replace(
        'api_key = "env:NVIDIA_API_KEY"',
        'api_key = "env:NVIDIA_API_KEY"\nheaders = { "X-Title" = "a\\r\\nInjected: 1" }',
    )
    err = error_of(text)
    assert err.key == "providers.nvidia.headers.X-Title"
    assert "control characters" in str(err)


def test_line_numbers_count_only_newlines() -> None:
    text = "# a comment with \u2028 in it\n" + SEED.replace("port = 8000", 'port = "x"')
    assert error_of(text).line == 4


def test_toml_syntax_error_has_line() -> None:
    err = error_of(SEED.replace("port = 8000", "port = = 8000"))
    assert err.line == 3
    assert "not valid TOML" in str(err)
    assert str(err).startswith("cfg.toml:3: ")


def test_missing_provider_error_lists_configured_ones() -> None:
    err = error_of(SEED.replace('provider = "nvidia"', 'provider = "groq"'))
    assert "configured: nvidia" in str(err)


def test_load_file_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_file(missing)
    bad = tmp_path / "bad.toml"
    bad.write_text(SEED.replace("port = 8000", "port = true"))
    with pytest.raises(ConfigError) as info:
        load_file(bad)
    assert str(info.value).startswith(f"{bad}:3: server.port:")


def test_first_run_template(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    assert ensure_config_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_config_file(path) is False  # never overwrites
    config = load_file(path, environ={})
    expected = {"nvidia", "groq", "mistral", "siliconflow", "openrouter", "deepseek", "ollama"}
    assert expected <= set(config.providers)
    assert config.models["nvidia/kimi-k2-thinking"].model == "moonshotai/kimi-k2-thinking"
    assert config.models["siliconflow/qwen3-32b"].model == "Qwen/Qwen3-32B"
    assert config.models["groq/gpt-oss-120b"].model == "openai/gpt-oss-120b"
    # keys come from the environment, never written into the file
    assert all(p.api_key.source.startswith(("env:", "auto:")) for p in config.providers.values())
    ollama = config.providers["ollama"].api_key  # no api_key line, and none to be found
    assert ollama.secret is None and not ollama.missing
    assert template_text().count("#") > 20  # it explains itself


def test_trayproxy_home_puts_everything_under_one_folder(tmp_path: Path) -> None:
    p = paths.app_paths({"TRAYPROXY_HOME": str(tmp_path)})
    assert p.config_file == tmp_path / "config.toml"
    for d in (p.data_dir, p.log_dir, p.state_dir):
        assert tmp_path in d.parents
    assert paths.config_path(str(tmp_path / "x.toml")) == tmp_path / "x.toml"
    assert paths.config_path() == Path(os.environ["TRAYPROXY_HOME"]) / "config.toml"


def test_default_config_dir_is_platformdirs() -> None:
    p = paths.app_paths({})
    assert "trayproxy" in str(p.config_file)
    assert p.config_file.name == "config.toml"


def test_capabilities_are_checked() -> None:
    err = error_of(SEED + 'capabilities = ["telepathy"]\n')
    assert err.key == 'models."nvidia/kimi-k2-thinking".capabilities'
    assert '"tool_use", "vision", "reasoning"' in str(err)
    ok = parse(SEED + 'capabilities = ["tool_use", "vision"]\n', environ={})
    assert ok.models["nvidia/kimi-k2-thinking"].capabilities == ("tool_use", "vision")


def test_reading_is_pure_and_keys_are_resolved_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """``read`` touches neither the environment nor the keychain; ``parse`` resolves the
    references it found, and a problem with one still names its line."""
    from trayproxy.config import keys
    from trayproxy.config.parse import read

    asked: list[str] = []

    def no_keychain(name: str) -> None:
        asked.append(name)
        raise keys.KeyRefError("the OS keychain cannot be read")

    monkeypatch.setattr(keys, "_from_keyring", no_keychain)
    monkeypatch.setenv("NVIDIA_API_KEY", "nvapi-from-env")
    text = SEED + '\n[providers.kc]\nbase_url = "https://kc.example/v1"\napi_key = "keyring:kc"\n'
    config = read(text, file="config.toml")
    assert config.providers["nvidia"].api_key.source == "env:NVIDIA_API_KEY"
    assert config.providers["nvidia"].api_key.secret is None
    assert config.providers["kc"].api_key.secret is None
    assert asked == []
    resolved = parse(SEED, file="config.toml")
    assert resolved.providers["nvidia"].api_key.secret == Secret("nvapi-from-env")
    with pytest.raises(ConfigError) as info:
        parse(text, file="config.toml")
    line = text.splitlines().index('api_key = "keyring:kc"') + 1
    assert str(info.value) == (
        f"config.toml:{line}: providers.kc.api_key: the OS keychain cannot be read"
    )
    assert asked == ["kc"]
