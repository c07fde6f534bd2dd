from __future__ import annotations

import pytest

from trayproxy.config.parse import parse
from trayproxy.routing.resolve import EXACT, PROVIDER_PREFIX, UnknownModelError, resolve

TEXT = """
[providers.nvidia]
base_url = "https://integrate.api.nvidia.com/v1"
api_key = "k"
[providers.groq]
base_url = "https://api.groq.com/openai/v1"
[models."nvidia/kimi-k2-thinking"]
provider = "nvidia"
model = "moonshotai/kimi-k2-thinking"
[models."groq/gpt-oss-120b"]
provider = "groq"
model = "openai/gpt-oss-120b"
[models."siliconflow/qwen3-32b"]
provider = "groq"
model = "Qwen/Qwen3-32B"
"""


@pytest.fixture
def config():
    return parse(TEXT, environ={})


def test_exact_mapping(config) -> None:
    route = resolve(config, "nvidia/kimi-k2-thinking")
    assert route.provider.name == "nvidia"
    assert route.upstream_model == "moonshotai/kimi-k2-thinking"
    assert route.rule == EXACT
    assert route.rewritten


def test_provider_prefix_fallback(config) -> None:
    route = resolve(config, "groq/llama-3.3-70b-versatile")
    assert route.provider.name == "groq"
    assert route.upstream_model == "llama-3.3-70b-versatile"
    assert route.rule == PROVIDER_PREFIX


def test_prefix_keeps_slashes_in_the_rest(config) -> None:
    assert resolve(config, "nvidia/meta/llama-3.1-8b").upstream_model == "meta/llama-3.1-8b"


@pytest.mark.parametrize("model", ["openai/gpt-4o", "nvidia/", "nvidia/bad name", "nvidia//x"])
def test_prefix_fallback_is_safe(config, model: str) -> None:
    with pytest.raises(UnknownModelError):
        resolve(config, model)


def test_prefix_fallback_can_be_turned_off() -> None:
    config = parse(TEXT + "[routing]\nprovider_prefix = false\n", environ={})
    with pytest.raises(UnknownModelError):
        resolve(config, "groq/llama-3.3-70b-versatile")


def test_unknown_model_suggests_nearest_ids(config) -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve(config, "kimi-k2-thinking")
    assert info.value.suggestions[0] == "nvidia/kimi-k2-thinking"
    assert "Did you mean 'nvidia/kimi-k2-thinking'" in info.value.message
    with pytest.raises(UnknownModelError) as info:
        resolve(config, "siliconflow/qwen3-23b")
    assert "siliconflow/qwen3-32b" in info.value.suggestions


def test_unknown_model_without_near_match_lists_known(config) -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve(config, "zzzzzz")
    assert info.value.suggestions == []
    assert "Known ids:" in info.value.message
    assert "groq/gpt-oss-120b" in info.value.message
