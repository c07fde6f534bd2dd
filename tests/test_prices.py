"""Prices and costs as plain values: what a request cost, and prices from a model list."""

from __future__ import annotations

import pytest

from trayproxy.core.prices import Price, cost, from_model_list
from trayproxy.core.usage import usage_from_obj


def test_cached_tokens_are_priced_as_cached_and_the_rest_as_input() -> None:
    price = Price(0.6, 2.5, 0.15)
    assert cost(price, 1000, 200, 400) == pytest.approx((600 * 0.6 + 400 * 0.15 + 200 * 2.5) / 1e6)
    assert cost(Price(0.6, 2.5), 1000, 200, 400) == pytest.approx((1000 * 0.6 + 200 * 2.5) / 1e6)


def test_reasoning_is_output_and_is_added_only_when_reported_apart() -> None:
    price = Price(1, 10)
    assert cost(price, 100, 500, reasoning_tokens=300) == pytest.approx((100 + 5000) / 1e6)
    assert cost(price, 100, 50, reasoning_tokens=300) == pytest.approx((100 + 3500) / 1e6)


def test_no_price_or_no_tokens_is_unknown_never_zero() -> None:
    assert cost(None, 1000, 200) is None
    assert cost(Price(1, 1), None, None) is None
    assert cost(Price(0, 0), 1000, 200) == 0.0  # a free model is free


def test_prices_from_an_openrouter_model_list() -> None:
    data = {
        "data": [
            {
                "id": "paid",
                "pricing": {
                    "prompt": "0.0000006",
                    "completion": "0.0000025",
                    "input_cache_read": "0.00000015",
                },
            },
            {"id": "free", "pricing": {"prompt": "0", "completion": "0"}},
            {"id": "router", "pricing": {"prompt": "-1", "completion": "-1"}},
            {"id": "unpriced"},
            {"id": "half", "pricing": {"prompt": "0.000001"}},
            "junk",
        ]
    }
    prices = from_model_list(data, "openrouter")
    assert prices["paid"] == Price(0.6, 2.5, 0.15, "openrouter")
    assert prices["free"] == Price(0.0, 0.0, None, "openrouter")
    assert set(prices) == {"paid", "free"}  # "varies", missing and half prices: unknown
    assert from_model_list({"error": "x"}, "x") == {} and from_model_list([], "x") == {}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (  # OpenAI
            {
                "prompt_tokens": 1000,
                "completion_tokens": 200,
                "prompt_tokens_details": {"cached_tokens": 400},
                "completion_tokens_details": {"reasoning_tokens": 50},
            },
            (1000, 200, 400, 50),
        ),
        (  # DeepSeek
            {"prompt_tokens": 900, "completion_tokens": 10, "prompt_cache_hit_tokens": 800},
            (900, 10, 800, None),
        ),
        (  # Moonshot
            {"prompt_tokens": 900, "completion_tokens": 10, "cached_tokens": 512},
            (900, 10, 512, None),
        ),
        (  # Anthropic: input_tokens leaves the cache out
            {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_read_input_tokens": 300,
                "cache_creation_input_tokens": 20,
            },
            (330, 5, 300, None),
        ),
        (  # Responses
            {
                "input_tokens": 70,
                "output_tokens": 9,
                "input_tokens_details": {"cached_tokens": 64},
                "output_tokens_details": {"reasoning_tokens": 4},
            },
            (70, 9, 64, 4),
        ),
    ],
)
def test_cached_and_reasoning_tokens_are_read_in_each_provider_s_words(usage, expected) -> None:
    found = usage_from_obj({"usage": usage})
    assert found is not None
    got = (
        found.prompt_tokens,
        found.completion_tokens,
        found.cached_tokens,
        found.reasoning_tokens,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("price", "said"),
    [(Price(0, 0), " cost=$0 "), (Price(0.6, 2.5), " cost=$0.001845 "), (None, None)],
)
def test_the_log_line_says_the_cost_and_the_key_by_label(price, said) -> None:
    from trayproxy.records.logbook import RecordDraft

    draft = RecordDraft("chat/completions", prompt_tokens=1200, completion_tokens=450)
    draft.price, draft.key_label, draft.status = price, "nvidia-1", 200
    line = draft.finish(1).log_line() + " "
    assert " key=nvidia-1 " in line
    if said is None:
        assert "cost=" not in line  # no price: no figure, not $0
    else:
        assert said in line
