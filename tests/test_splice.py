"""A large body goes upstream as the client sent it, with only the model's value replaced.

``upstream.splice_model`` must replace the top-level ``"model"`` value or refuse (None, and the
body is written out again): never another place that looks like it.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.conftest import Proxy, post_json
from trayproxy import jsonfast
from trayproxy.upstream import SPLICE_MIN, splice_model

CLIENT = "nvidia/kimi-k2-thinking"
UPSTREAM = "moonshotai/kimi-k2-thinking"


def check(raw: bytes) -> bytes | None:
    """splice_model, and if it spliced, that the result means the body with the new model."""
    body = jsonfast.loads(raw)
    out = splice_model(raw, body, UPSTREAM)
    if out is not None:
        assert json.loads(out) == {**body, "model": UPSTREAM}
    return out


def test_only_the_value_changes_and_every_other_byte_stays() -> None:
    raw = b'{ "messages" : [{"role":"user","content":"hi"}],\n  "model" :  "%s", "n": 1 }' % (
        CLIENT.encode()
    )
    out = check(raw)
    assert out == raw.replace(CLIENT.encode(), UPSTREAM.encode())


@pytest.mark.parametrize(
    "raw",
    [
        # a nested "model" with the same value: which one is the top-level one is unsure
        b'{"metadata":{"model":"%s"},"model":"%s"}' % (CLIENT.encode(), CLIENT.encode()),
        # a nested "model" key with another value: two keys
        b'{"tools":[{"model":"x"}],"model":"%s"}' % CLIENT.encode(),
        # the top-level key written with an escape, a nested plain one with the same value
        b'{"mod\\u0065l":"%s","extra":{"model":"%s"}}' % (CLIENT.encode(), CLIENT.encode()),
        # the value written with an escaped slash (valid JSON, not how it is written back)
        b'{"model":"nvidia\\/kimi-k2-thinking"}',
        # the key twice at the top level
        b'{"model":"other","model":"%s"}' % CLIENT.encode(),
    ],
)
def test_unsure_places_are_left_to_the_json_writer(raw: bytes) -> None:
    assert check(raw) is None


def test_lookalikes_inside_strings_and_keys_are_not_the_key() -> None:
    raw = (
        b'{"messages":[{"role":"user","content":"say \\"model\\": \\"%s\\", {\\"model\\":1}"},'
        b'{"foo \\"model":"%s"}],"model":"%s"}'
    ) % (CLIENT.encode(), CLIENT.encode(), CLIENT.encode())
    out = check(raw)
    assert out is not None and out.endswith(b'"model":"%s"}' % UPSTREAM.encode())


def test_numbers_beyond_64_bits_go_through_exactly() -> None:
    raw = b'{"model":"%s","seed":%d,"messages":[]}' % (CLIENT.encode(), 2**70)
    out = check(raw)
    assert out is not None and b"%d" % 2**70 in out


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(6 if depth < 3 else 3)
    if kind == 0:
        return rng.choice(["model", CLIENT, 'a "quoted" model', "x\\y", "{,", "é", ""])
    if kind == 1:
        return rng.choice([0, -1, 2**70, 1.5, True, None])
    if kind == 2:
        return rng.choice(['"model":', ',"model"', '{"model":"' + CLIENT + '"}'])
    if kind == 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["model", "content", "role", "a,b", '"model"', "{"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_random_bodies_are_spliced_right_or_not_at_all() -> None:
    rng = random.Random(7)
    spliced = 0
    for _ in range(3000):
        body = {k: _random_value(rng, 1) for k in rng.sample(["a", "b", "messages"], 2)}
        body["model"] = CLIENT
        items = list(body.items())
        rng.shuffle(items)
        sep = rng.choice([(",", ":"), (", ", ": "), (",\n ", " : ")])
        raw = json.dumps(dict(items), separators=sep, ensure_ascii=rng.random() < 0.5).encode()
        if check(raw) is not None:
            spliced += 1
    assert spliced > 1000  # the usual case is spliced, not only refused


def test_a_large_body_reaches_the_provider_as_sent(proxy: Proxy) -> None:
    content = "lorem ipsum " * (SPLICE_MIN // 6)
    body = {"messages": [{"role": "user", "content": content}], "model": CLIENT, "n": 1}
    status, _, answer = post_json(proxy.base_url + "/chat/completions", body)
    assert status == 200, answer
    seen = proxy.upstream.requests[-1]
    assert seen.body == {**body, "model": UPSTREAM}
    # post_json writes ", " and ": " (a compact writer would not): the provider got those
    sent = json.dumps(body).encode()
    assert len(sent) > SPLICE_MIN
    assert seen.raw_size == len(sent) - len(CLIENT) + len(UPSTREAM)
