"""The config keys of several keys, prices, keep-alive and long prompts: values and errors."""

from __future__ import annotations

import pytest

from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.core.prices import Price
from trayproxy.gateway.client_stream import has_content

BASE = """
[providers.groq]
base_url = "https://api.groq.com/openai/v1"
api_keys = ["env:GROQ_1", { key = "env:GROQ_2", label = "team" }, "gsk-literal"]
key_strategy = "round-robin"
keepalive_seconds = 2.5
price = { input = 0.05, output = 0.08 }

[providers.openrouter]
base_url = "https://openrouter.ai/api/v1"
api_key = ""

[models."groq/llama"]
provider = "groq"
model = "llama-3.3-70b-versatile"
max_context_size = 131072
long_context = "openrouter/gemini"
price = { input = 0.59, output = 0.79, cached_input = 0.3 }

[costs]
daily_budget = 5
"""


def test_the_keys_read_as_written() -> None:
    config = parse(BASE, environ={"GROQ_1": "gsk-one", "GROQ_2": "gsk-two"})
    groq = config.providers["groq"]
    assert [k.label for k in groq.keys] == ["GROQ_1", "team", "key 3"]
    assert [k.ref.secret.reveal() for k in groq.keys] == ["gsk-one", "gsk-two", "gsk-literal"]
    assert groq.api_key == groq.keys[0].ref and groq.key_strategy == "round-robin"
    assert groq.keepalive_seconds == 2.5 and groq.price == Price(0.05, 0.08)
    assert "gsk-" not in repr(groq)
    assert set(config.secret_values()) >= {"gsk-one", "gsk-two", "gsk-literal"}
    mapping = config.models["groq/llama"]
    assert mapping.long_context == "openrouter/gemini"
    assert mapping.price == Price(0.59, 0.79, 0.3)
    assert config.costs.daily_budget == 5.0
    openrouter = config.providers["openrouter"]
    assert openrouter.profile.price_list and not groq.profile.price_list
    assert openrouter.keepalive_seconds == 5.0 and [k.label for k in openrouter.keys] == ["key 1"]


def test_a_provider_with_some_keys_unset_still_has_a_key() -> None:
    config = parse(BASE, environ={"GROQ_2": "gsk-two"})
    assert not config.providers["groq"].needs_key
    lone = BASE.replace(', { key = "env:GROQ_2", label = "team" }, "gsk-literal"', "")
    assert parse(lone, environ={}).providers["groq"].needs_key


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        (
            ('key_strategy = "round-robin"', 'key_strategy = "random"'),
            "providers.groq.key_strategy",
            'one of "order", "round-robin"',
        ),
        (
            ("keepalive_seconds = 2.5", "keepalive_seconds = -1"),
            "providers.groq.keepalive_seconds",
            "between 0 and 3600",
        ),
        (
            ("price = { input = 0.05, output = 0.08 }", "price = { input = 0.05 }"),
            "providers.groq.price.output",
            "is required",
        ),
        (
            (
                "price = { input = 0.05, output = 0.08 }",
                'price = { input = 0.05, output = 0.08, currency = "EUR" }',
            ),
            "providers.groq.price.currency",
            "unknown key",
        ),
        (
            ('long_context = "openrouter/gemini"', 'long_context = "nowhere/model"'),
            'models."groq/llama".long_context',
            "not a configured model id",
        ),
        (
            ('long_context = "openrouter/gemini"', 'long_context = "groq/llama"'),
            'models."groq/llama".long_context',
            "another model id",
        ),
        (("daily_budget = 5", "daily_budget = 0"), "costs.daily_budget", "between"),
        (
            ('key_strategy = "round-robin"', 'key_strategy = "order"\napi_key = "x"'),
            "providers.groq.api_keys",
            "not both",
        ),
        (
            ('{ key = "env:GROQ_2", label = "team" }', '"env:GROQ_1"'),
            "providers.groq.api_keys",
            "labelled 'GROQ_1'",
        ),
        (
            ('api_keys = ["env:GROQ_1"', 'api_keys = [5, "env:GROQ_1"'),
            "providers.groq.api_keys",
            "item 1 must be a key reference",
        ),
    ],
)
def test_mistakes_name_file_line_and_key(change, where, words) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(ConfigError) as caught:
        parse(text, file="config.toml", environ={"GROQ_1": "a", "GROQ_2": "b"})
    said = str(caught.value)
    assert said.startswith("config.toml:") and caught.value.line is not None
    assert f": {where}: " in said and words in said


@pytest.mark.parametrize(
    ("chunk", "content"),
    [
        (b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n', False),
        (b'data: {"choices":[{"delta":{"role":"assistant","content":null}}]}\n\n', False),
        (b": OPENROUTER PROCESSING\n\n", False),
        (
            b'event: message_start\ndata: {"type":"message_start","message":{"content":[]}}\n\n',
            False,
        ),
        (b'event: response.created\ndata: {"response":{"text":{"format":{}}}}\n\n', False),
        (b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n', True),
        (b'data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}\n\n', True),
        (b'data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}\n\n', True),
        (b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n', True),
        (b"data: [DONE]\n\n", True),
        # an error is not content: before any, the next key or route may still answer
        (b'data: {"error":{"message":"overloaded"}}\n\n', False),
        (
            b'event: response.created\ndata: {"response":{"error":null,"status":"in_progress"}}',
            False,
        ),
        (b"event: content_block_start\ndata: {}\n\n", True),
        (b"event: response.output_item.added\ndata: {}\n\n", True),
    ],
)
def test_what_counts_as_the_first_content(chunk: bytes, content: bool) -> None:
    assert has_content(chunk) is content
