"""The key pool's decisions and the waits it reads from a provider's 429, as plain values."""

from __future__ import annotations

import time

import pytest

from trayproxy.config.model import KeyRef, Provider, ProviderKey
from trayproxy.core.secret import Secret
from trayproxy.gateway.key_pool import BACKOFF_FIRST, BACKOFF_MAX, KeyPool, wait_asked


def _provider(*labels: str, strategy: str = "order") -> Provider:
    keys = tuple(ProviderKey(label, KeyRef("literal", Secret("k-" + label))) for label in labels)
    return Provider(
        "groq",
        "https://api.groq.com/openai/v1",
        keys[0].ref,
        api_keys=keys,
        key_strategy=strategy,
    )


@pytest.mark.parametrize(
    ("headers", "body", "seconds"),
    [
        ({"Retry-After": "7"}, None, 7.0),
        ({"retry-after": "0.5"}, b"", 0.5),
        ({}, b"Rate limit reached ... Please try again in 7.5s. Visit ...", 7.5),
        ({}, b'{"error": {"message": "try again in 1m30s"}}', 90.0),
        ({}, b"Please retry after 20 seconds", 20.0),
        ({}, b"Try again in 2 minutes.", 120.0),
        ({}, b"please try again in 600ms", 0.6),
        ({}, b"Limit reached for the day; try again in 23h0m0s", 82800.0),
        ({}, b"try again later", None),
        ({}, None, None),
        ({"Retry-After": "soon"}, b"try again in 3s", 3.0),  # a header that says nothing
    ],
)
def test_the_wait_a_429_asks_for(headers, body, seconds) -> None:
    found = wait_asked(headers, body)
    assert found == (None if seconds is None else pytest.approx(seconds))


def test_a_retry_after_date_is_read_as_the_seconds_until_it() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < wait_asked({"Retry-After": when}, None) <= 31


def test_order_uses_the_first_ready_key_and_a_resting_key_waits_per_model() -> None:
    pool, groq = KeyPool(), _provider("a", "b")
    assert [k.label for k in pool.pick(groq, "llama").ready] == ["a", "b"]
    pool.cool("groq", groq.api_keys[0], "llama", 30)
    pick = pool.pick(groq, "llama")
    assert [k.label for k in pick.ready] == ["b"]
    assert pick.skipped == ("a: rate-limited for 30 s more",)
    # rate limits are counted per model: another model may use the key
    assert [k.label for k in pool.pick(groq, "gemma").ready] == ["a", "b"]
    pool.cool("groq", groq.api_keys[1], "llama", 10)
    pick = pool.pick(groq, "llama")
    assert pick.ready == () and 9 < pick.wait <= 10 and not pick.all_rejected


def test_round_robin_starts_each_request_at_the_next_key() -> None:
    pool, groq = KeyPool(), _provider("a", "b", "c", strategy="round-robin")
    firsts = [pool.pick(groq, "m").ready[0].label for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_without_a_hint_the_rest_doubles_up_to_a_limit_and_a_success_resets_it() -> None:
    pool, groq = KeyPool(), _provider("a")
    key = groq.api_keys[0]
    rests = []
    for _ in range(8):
        rests.append(pool.cool("groq", key, "m", None))
        pool._cooling[("groq", "a", "m")].until = 0.0  # rested: the next 429 is a new one
    assert rests[:3] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST]
    assert rests[-1] == BACKOFF_MAX
    pool.served("groq", key, "m")
    assert pool.cool("groq", key, "m", None) == BACKOFF_FIRST
    # 429s to requests sent before the key rested (at the same moment) count once
    again = pool.cool("groq", key, "m", None)
    assert BACKOFF_FIRST - 1 < again <= BACKOFF_FIRST


def test_a_rejected_key_is_set_aside_once_until_the_config_changes() -> None:
    from trayproxy.config.model import Config

    pool, groq = KeyPool(), _provider("a", "b")
    assert pool.reject("groq", groq.api_keys[0], "401 Invalid API Key") is True
    assert pool.reject("groq", groq.api_keys[0], "401 Invalid API Key") is False  # one notice
    pick = pool.pick(groq, "any-model")
    assert [k.label for k in pick.ready] == ["b"]
    assert pick.skipped == ("a: set aside (401 Invalid API Key)",)
    pool.reject("groq", groq.api_keys[1], "403 Forbidden")
    assert pool.pick(groq, "m").all_rejected
    pool.cool("groq", groq.api_keys[1], "m", 60)
    pool.config_changed(Config(providers={"groq": groq}))
    pick = pool.pick(groq, "m")
    assert [k.label for k in pick.ready] == ["a"]  # b still rests: rate limits hold


def test_the_page_sees_labels_and_states_never_values() -> None:
    pool, groq = KeyPool(), _provider("a", "b", "c")
    pool.cool("groq", groq.api_keys[1], "llama", 60)
    pool.reject("groq", groq.api_keys[2], "401 Invalid API Key")
    rows = pool.snapshot({"groq": groq})["groq"]
    assert [(r["label"], r["state"]) for r in rows] == [
        ("a", "ready"),
        ("b", "cooling"),
        ("c", "rejected"),
    ]
    assert list(rows[1]["models"]) == ["llama"] and rows[1]["until"] > time.time() + 50
    assert "k-" not in repr(rows)


def test_a_key_whose_variable_is_unset_is_passed_over_while_another_is_set() -> None:
    pool = KeyPool()
    unset = ProviderKey("GROQ_1", KeyRef("env:GROQ_1"))
    good = ProviderKey("GROQ_2", KeyRef("env:GROQ_2", Secret("k")))
    groq = Provider("groq", "https://api.groq.com/openai/v1", unset.ref, api_keys=(unset, good))
    pick = pool.pick(groq, "m")
    assert [k.label for k in pick.ready] == ["GROQ_2"] and pick.skipped == ("GROQ_1: not set",)
    lone = Provider("groq", "https://api.groq.com/openai/v1", unset.ref, api_keys=(unset,))
    assert [k.label for k in pool.pick(lone, "m").ready] == ["GROQ_1"]  # its error says how
