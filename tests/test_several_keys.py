"""Several keys per provider, end to end: ``api_keys`` and ``key_strategy`` in config.toml;
a key answered 429 rests for the wait the provider asked (``Retry-After`` or "try again in
1.5s") and the same request moves to the next key; a key answered 401/403 is set aside with
one notice until the config is applied again; every key resting on the last route is a local
429 that never reaches the provider. Driven by the ``openai`` SDK (Chat Completions and the
Responses API) and the ``anthropic`` SDK (Messages) through an in-process trayproxy to the
strict fake provider of tests/keyed_upstream.py; streams are held to the grammars. No key
value may show anywhere: records, the page's Keys API, notices, logs, answers."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests import anthropic_grammar, responses_grammar
from tests.conftest import CLIENT_KEY, http, post_json
from tests.keyed_upstream import (
    CHAT_PATH,
    FORBIDDEN,
    OK,
    REJECTED,
    Behaviour,
    KeyedUpstream,
    rate_limited_body,
    rate_limited_header,
)
from tests.notice_box import NoticeBox
from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

KEY_A = "sk-alpha-7Hq2Lm9Xv4RtPz0"
KEY_B = "sk-bravo-3Np8Kc6Wz1YdQe5"
KEY_C = "sk-charlie-5Gf0Ju2Qs7BeW"
KEY_SPARE = "sk-spare-8Ty4Vb1Nm6ZaX3"
ENV = {"KEY_A": KEY_A, "KEY_B": KEY_B, "KEY_C": KEY_C, "KEY_SPARE": KEY_SPARE}
LABEL_OF = {KEY_A: "KEY_A", KEY_B: "KEY_B", KEY_C: "KEY_C", KEY_SPARE: "KEY_SPARE"}
SECRETS = tuple(ENV.values())
TAG = re.compile(r"tag-[0-9]+")


# ---------------------------------------------------------------- the rig


def config_text(base_url: str, refs: list[str], strategy: str | None) -> str:
    keys = ", ".join(json.dumps(ref) for ref in refs)
    strategy_line = f'key_strategy = "{strategy}"\n' if strategy else ""
    return f"""
[server]
host = "127.0.0.1"
port = 0

[providers.multi]
base_url = "{base_url}"
api_keys = [{keys}]
{strategy_line}
[providers.spare]
base_url = "{base_url}"
api_key = "env:KEY_SPARE"

[models."multi/m"]
provider = "multi"
model = "m1"

[models."multi/m2"]
provider = "multi"
model = "m2"

[models."multi/fb"]
provider = "multi"
model = "m1"
fallbacks = ["spare/s"]

[models."spare/s"]
provider = "spare"
model = "s1"
"""


class Rig:
    """A fake provider whose keys behave as told, and a trayproxy in front of it whose
    provider ``multi`` has the keys ``refs`` (``spare`` has one good key of its own)."""

    def __init__(
        self,
        keys: dict[str, Behaviour],
        refs: tuple[str, ...] = ("env:KEY_A", "env:KEY_B"),
        *,
        strategy: str | None = None,
        notify: bool = True,
    ) -> None:
        self.fake = KeyedUpstream({**keys, KEY_SPARE: OK}).start()
        self.text = config_text(self.fake.base_url, list(refs), strategy)
        self.notices = NoticeBox()
        self.server = ProxyServer(self.config(), notify=self.notices if notify else None)
        self.server.start()
        self.asked = 0  # requests made through the helpers: each files one record
        self.answers: list[bytes] = []  # every answer's bytes, checked for key values
        self._tags = 0

    def config(self):
        return parse(self.text, file="config.toml", environ=ENV)

    def stop(self) -> None:
        self.server.stop(grace=1)
        self.fake.stop()

    # ------------------------------------------------------------ requests

    def tag(self) -> str:
        """A word no other request carries: the fake's requests are grouped by it."""
        self._tags += 1
        return f"tag-{self._tags}"

    def chat(self, model: str = "multi/m", **extra: Any) -> tuple[int, dict[str, str], bytes]:
        self.asked += 1
        body = {"model": model, "messages": [{"role": "user", "content": self.tag()}], **extra}
        status, headers, raw = post_json(
            self.server.base_url + "/chat/completions",
            body,
            {"Authorization": f"Bearer {CLIENT_KEY}"},
        )
        self.answers.append(raw)
        return status, headers, raw

    def openai(self) -> openai.OpenAI:
        self.asked += 1  # the caller makes one request with it
        return openai.OpenAI(base_url=self.server.base_url, api_key=CLIENT_KEY, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        self.asked += 1
        return anthropic.Anthropic(base_url=self.server.root_url, api_key=CLIENT_KEY, max_retries=0)

    def raw(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        self.asked += 1
        status, headers, raw = http(
            "POST",
            self.server.root_url + path,
            json.dumps(body).encode(),
            {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {CLIENT_KEY}",
                "anthropic-version": "2023-06-01",
            },
        )
        self.answers.append(raw)
        return status, headers, raw

    # ------------------------------------------------------------ what happened

    def record(self) -> dict[str, Any]:
        """The newest request's record, once every request made so far has filed its own."""
        deadline = time.monotonic() + 5
        while len(self.server.logbook.recent()) < self.asked or self.server.in_flight:
            assert time.monotonic() < deadline, "a request filed no record"
            time.sleep(0.01)
        return self.server.logbook.recent(1)[0].to_dict()

    def page_keys(self) -> dict[str, list[dict[str, Any]]]:
        status, _, raw = http("GET", self.server.root_url + "/_trayproxy/api/keys")
        assert status == 200, raw
        self.answers.append(raw)
        return {p["name"]: p["keys"] for p in json.loads(raw)["providers"]}

    def keys_of(self, tag: str) -> list[str | None]:
        """The keys the fake received the request ``tag`` with, in order."""
        return [r.key for r in self.fake.requests if _tag(r.body) == tag]

    def wait_notices(self, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        return self.notices.wait(count, timeout)

    def check_nothing_sent_twice(self) -> None:
        """No request reached the provider twice with the same key."""
        pairs = Counter((_tag(r.body), r.key) for r in self.fake.requests if r.path == CHAT_PATH)
        twice = {pair: n for pair, n in pairs.items() if n > 1}
        assert not twice, f"sent more than once with the same key: {twice}"
        assert all(tag is not None for tag, _ in pairs), "a request without its tag"

    def check_no_key_value(self, log_text: str) -> None:
        """No key value in records, the page's Keys API, notices, the log or answers."""
        self.page_keys()
        records = json.dumps([r.to_dict() for r in self.server.logbook.recent()])
        notices = json.dumps(self.notices.all())
        answers = b"".join(self.answers).decode("utf-8", "replace")
        for secret in SECRETS:
            for where, text in (
                ("records", records),
                ("notices", notices),
                ("log", log_text),
                ("answers", answers),
            ):
                assert secret not in text, f"a key value in the {where}"


def _tag(body: Any) -> str | None:
    found = TAG.search(json.dumps(body))
    return found.group(0) if found else None


@pytest.fixture
def rigs(caplog: pytest.LogCaptureFixture) -> Iterator[list[Rig]]:
    """Rigs started by a test; after it: nothing was sent twice with one key, and no key
    value shows anywhere."""
    caplog.set_level(logging.DEBUG)
    made: list[Rig] = []
    yield made
    try:
        for rig in made:
            rig.check_nothing_sent_twice()
            rig.check_no_key_value(caplog.text)
    finally:
        for rig in made:
            rig.stop()


@pytest.fixture
def rig(rigs: list[Rig]):
    def make(*args: Any, **kwargs: Any) -> Rig:
        made = Rig(*args, **kwargs)
        rigs.append(made)
        return made

    return make


def chat_text(raw: bytes) -> str:
    return json.loads(raw)["choices"][0]["message"]["content"]


# ---------------------------------------------------------------- config


def test_labels_come_from_the_variable_the_keychain_entry_the_position_or_the_table(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring

    from tests.file_keyring import FileKeyring

    monkeypatch.setenv("TRAYPROXY_TEST_KEYRING", str(tmp_path / "keychain.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    try:
        keyring.set_password("trayproxy", "groq-two", "gsk-from-the-keychain")
        text = (
            "[providers.groq]\n"
            'base_url = "https://api.groq.com/openai/v1"\n'
            'api_keys = ["env:GROQ_ONE", "keyring:groq-two", "gsk-literal-three", '
            '{ key = "env:GROQ_FOUR", label = "work" }, "env:GROQ_UNSET"]\n'
            'key_strategy = "round-robin"\n'
        )
        config = parse(text, file="config.toml", environ={"GROQ_ONE": "g1", "GROQ_FOUR": "g4"})
        default = parse(text.replace('key_strategy = "round-robin"\n', ""), environ={})
    finally:
        keyring.set_keyring(previous)
    groq = config.providers["groq"]
    assert [k.label for k in groq.keys] == ["GROQ_ONE", "groq-two", "key 3", "work", "GROQ_UNSET"]
    assert [k.ref.missing for k in groq.keys] == [False, False, False, False, True]
    assert groq.key_strategy == "round-robin"
    assert not groq.needs_key  # one key missing of five: the others serve
    assert "gsk-" not in repr(config)
    assert default.providers["groq"].key_strategy == "order"


def _line_of(text: str, start: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


@pytest.mark.parametrize(
    ("keys_lines", "said"),
    [
        (
            'api_keys = [{ key = "env:A", label = "work" }, { key = "env:B", label = "work" }]',
            "two keys are labelled 'work'",
        ),
        ('api_keys = ["env:SAME", "env:SAME"]', "two keys are labelled 'SAME'"),
        (
            'api_key = "env:A"\napi_keys = ["env:A", "env:B"]',
            "use api_key for one key or api_keys for several, not both",
        ),
    ],
)
def test_key_list_mistakes_name_the_file_line_and_key(keys_lines: str, said: str) -> None:
    text = f'[server]\nport = 0\n\n[providers.x]\nbase_url = "https://x.example/v1"\n{keys_lines}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text, file="config.toml", environ={"A": "a", "B": "b", "SAME": "s"})
    line = _line_of(text, "api_keys")
    assert str(caught.value).startswith(f"config.toml:{line}: providers.x.api_keys: {said}")


def test_an_unknown_strategy_is_a_config_error() -> None:
    text = (
        '[providers.x]\nbase_url = "https://x.example/v1"\napi_keys = ["env:A", "env:B"]\n'
        'key_strategy = "random"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, file="config.toml", environ={"A": "a", "B": "b"})
    assert str(caught.value).startswith("config.toml:4: providers.x.key_strategy: must be one of")


# ---------------------------------------------------------------- 429: rest and move on


def test_a_429_moves_the_same_request_to_the_next_key_which_rests_for_retry_after(rig) -> None:
    r = rig({KEY_A: rate_limited_header(1), KEY_B: OK})
    client = r.openai()
    answer = client.chat.completions.create(
        model="multi/m", messages=[{"role": "user", "content": r.tag()}]
    )
    limited_at = time.monotonic()
    assert answer.choices[0].message.content == "hello from m1"
    assert r.keys_of("tag-1") == [KEY_A, KEY_B]  # the first key got it exactly once
    rec = r.record()
    assert rec["status"] == 200 and rec["key_label"] == "KEY_B"
    assert rec["keys_skipped"] == ["multi KEY_A: answered 429, resting 1 s"]
    assert [(a["key"], a["status"]) for a in rec["attempts"]] == [("KEY_A", 429), ("KEY_B", 200)]

    # the page: KEY_A cools down for m1 until about a second from the 429
    page = r.page_keys()["multi"]
    assert [(k["label"], k["state"]) for k in page] == [("KEY_A", "cooling"), ("KEY_B", "ready")]
    assert set(page[0]["models"]) == {"m1"}
    assert 0 < page[0]["until"] - time.time() <= 1.1

    # the next request (a stream) goes straight to KEY_B: the fake sees no new KEY_A request
    r.fake.set_key(KEY_A, OK)
    stream = r.openai().chat.completions.create(
        model="multi/m", messages=[{"role": "user", "content": r.tag()}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "hello from m1"
    assert r.keys_of("tag-2") == [KEY_B]
    rec = r.record()
    assert rec["key_label"] == "KEY_B"
    assert len(rec["keys_skipped"]) == 1
    assert rec["keys_skipped"][0].startswith("multi KEY_A: rate-limited for ")
    assert rec["attempts"] == []  # one try: no attempts list

    # after the second it asked for, KEY_A (first in order) is used again
    time.sleep(max(0.0, limited_at + 1.1 - time.monotonic()))
    status, _, raw = r.chat()
    assert status == 200 and chat_text(raw) == "hello from m1"
    assert r.keys_of("tag-3") == [KEY_A]
    rec = r.record()
    assert rec["key_label"] == "KEY_A" and rec["keys_skipped"] == []
    assert [k["state"] for k in r.page_keys()["multi"]] == ["ready", "ready"]


def test_a_429_that_says_try_again_in_1_5s_rests_the_key_that_long_for_that_model(rig) -> None:
    r = rig({KEY_A: rate_limited_body(1.5), KEY_B: OK})
    status, _, raw = r.chat()
    limited_at = time.monotonic()
    assert status == 200 and chat_text(raw) == "hello from m1"
    assert r.keys_of("tag-1") == [KEY_A, KEY_B]
    assert r.record()["keys_skipped"] == ["multi KEY_A: answered 429, resting 1.5 s"]
    cooling = r.page_keys()["multi"][0]
    assert cooling["state"] == "cooling" and set(cooling["models"]) == {"m1"}
    assert 1.0 < cooling["until"] - time.time() <= 1.6  # 1.5 s, not the 10 s backoff

    r.fake.set_key(KEY_A, OK)
    # another model on the same key is not resting: limits are per key and model
    status, _, raw = r.chat("multi/m2")
    assert status == 200 and chat_text(raw) == "hello from m2"
    assert r.keys_of("tag-2") == [KEY_A]
    # m1 within the 1.5 s: KEY_A is passed over
    assert time.monotonic() - limited_at < 1.2, "the test machine is too slow for this check"
    r.chat()
    assert r.keys_of("tag-3") == [KEY_B]
    # m1 after the 1.5 s: KEY_A again
    time.sleep(max(0.0, limited_at + 1.6 - time.monotonic()))
    status, _, raw = r.chat()
    assert status == 200
    assert r.keys_of("tag-4") == [KEY_A]
    assert r.record()["key_label"] == "KEY_A"


def test_round_robin_spreads_requests_over_the_keys_in_turn(rig) -> None:
    r = rig({KEY_A: OK, KEY_B: OK}, strategy="round-robin")
    labels = []
    for _ in range(4):
        status, _, raw = r.chat()
        assert status == 200 and chat_text(raw) == "hello from m1"
        labels.append(r.record()["key_label"])
    served = [s.key for s in r.fake.served()]
    assert Counter(served) == {KEY_A: 2, KEY_B: 2}
    assert served in ([KEY_A, KEY_B] * 2, [KEY_B, KEY_A] * 2)  # in turn
    assert labels == [LABEL_OF[k] for k in served]


def test_round_robin_moves_on_past_a_resting_key(rig) -> None:
    r = rig(
        {KEY_A: rate_limited_header(2), KEY_B: OK, KEY_C: OK},
        ("env:KEY_A", "env:KEY_B", "env:KEY_C"),
        strategy="round-robin",
    )
    for _ in range(4):
        status, _, _ = r.chat()
        assert status == 200
    served = [s.key for s in r.fake.served()]
    assert KEY_A not in served
    assert len(r.fake.requests_with(KEY_A)) == 1  # once answered 429, then left to rest
    assert Counter(served)[KEY_B] >= 1 and Counter(served)[KEY_C] >= 1


# ---------------------------------------------------------------- 401/403: set aside


def test_rejected_keys_are_set_aside_with_one_notice_each_until_the_config_is_applied(
    rig,
) -> None:
    r = rig({KEY_A: REJECTED, KEY_B: FORBIDDEN, KEY_C: OK}, ("env:KEY_A", "env:KEY_B", "env:KEY_C"))
    status, _, raw = r.chat()
    assert status == 200 and chat_text(raw) == "hello from m1"
    assert r.keys_of("tag-1") == [KEY_A, KEY_B, KEY_C]
    rec = r.record()
    assert rec["key_label"] == "KEY_C"
    assert [(a["key"], a["status"]) for a in rec["attempts"]] == [
        ("KEY_A", 502),
        ("KEY_B", 502),
        ("KEY_C", 200),
    ]
    assert "401" in rec["keys_skipped"][0] and rec["keys_skipped"][0].startswith("multi KEY_A:")
    assert "403" in rec["keys_skipped"][1] and rec["keys_skipped"][1].startswith("multi KEY_B:")

    for _ in range(3):  # more requests: straight to KEY_C, and no more notices
        status, _, _ = r.chat()
        assert status == 200
    assert len(r.fake.requests_with(KEY_A)) == 1 and len(r.fake.requests_with(KEY_B)) == 1
    rec = r.record()
    assert rec["key_label"] == "KEY_C"
    assert [s.split(":")[0] for s in rec["keys_skipped"]] == ["multi KEY_A", "multi KEY_B"]
    assert all("set aside" in s for s in rec["keys_skipped"])
    notices = r.wait_notices(2)
    assert len(notices) == 2, notices
    by_label = {("KEY_A" if "'KEY_A'" in text else "KEY_B"): (t, text) for t, text in notices}
    assert set(by_label) == {"KEY_A", "KEY_B"}
    for title, text in notices:
        assert "multi" in title and "multi" in text

    page = {k["label"]: k for k in r.page_keys()["multi"]}
    assert page["KEY_A"]["state"] == "rejected" and page["KEY_A"]["why"].startswith("401")
    # a 403 sets the key aside for that model only (one the key may not use)
    assert page["KEY_B"]["state"] == "refused" and page["KEY_B"]["why"].startswith("m1: 403")
    assert page["KEY_C"]["state"] == "ready"

    # the user fixes KEY_A and the config is applied again: KEY_A gets another chance
    r.fake.set_key(KEY_A, OK)
    r.server.apply(r.config())
    before = len(r.fake.requests)
    status, _, _ = r.chat()
    assert status == 200
    assert [q.key for q in r.fake.requests[before:]] == [KEY_A]
    assert r.record()["key_label"] == "KEY_A"
    assert [k["state"] for k in r.page_keys()["multi"]] == ["ready", "ready", "ready"]
    assert len(r.wait_notices(3, timeout=0.3)) == 2


def test_every_key_rejected_is_a_502_then_later_requests_go_to_the_fallback(
    rig, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig({KEY_A: REJECTED, KEY_B: FORBIDDEN}, notify=False)
    status, _, raw = r.chat("multi/fb")
    assert status == 502 and json.loads(raw)["error"]["code"] == "upstream_auth_failed"
    assert r.keys_of("tag-1") == [KEY_A, KEY_B]  # the fallback (spare) was not asked
    # without a notifier, the one notice per key is a warning in the log
    assert len(_rejection_warnings(caplog)) == 2, caplog.text

    # said once; from now on the keys are set aside and the fallback answers at once
    before = len(r.fake.requests)
    status, _, raw = r.chat("multi/fb")
    assert status == 200 and chat_text(raw) == "hello from s1"
    assert [q.key for q in r.fake.requests[before:]] == [KEY_SPARE]  # multi was not asked
    rec = r.record()
    assert rec["provider"] == "spare" and rec["key_label"] == "KEY_SPARE"
    assert all("set aside" in s for s in rec["keys_skipped"]) and len(rec["keys_skipped"]) == 2
    assert rec["attempts"][0]["status"] is None and "set aside" in rec["attempts"][0]["error"]
    # another model without a fallback: KEY_A (401) is aside for every model, KEY_B (403)
    # only for m1, so it is asked once for m2, then set aside for it too
    before = len(r.fake.requests)
    status, _, raw = r.chat("multi/m2")
    assert status == 502 and [q.key for q in r.fake.requests[before:]] == [KEY_B]
    status, _, raw = r.chat("multi/m2")
    assert status == 502 and json.loads(raw)["error"]["code"] == "upstream_auth_failed"
    assert len(r.fake.requests) == before + 1  # nothing more reached the provider
    assert r.record()["key_label"] is None
    warned = _rejection_warnings(caplog)
    assert len(warned) == 3 and "'KEY_A'" in warned[0] and "'KEY_B'" in warned[1], warned


def _rejection_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "was rejected" in r.getMessage()
    ]


# ---------------------------------------------------------------- all resting


def test_every_key_resting_on_the_last_route_is_a_local_429_else_the_fallback_answers(
    rig,
) -> None:
    r = rig({KEY_A: rate_limited_header(2), KEY_B: rate_limited_header(2)})
    status, _, raw = r.chat()
    assert status == 429
    assert r.keys_of("tag-1") == [KEY_A, KEY_B]

    before = len(r.fake.requests)
    with pytest.raises(openai.RateLimitError) as caught:
        r.openai().chat.completions.create(
            model="multi/m", messages=[{"role": "user", "content": r.tag()}]
        )
    assert len(r.fake.requests) == before  # the provider heard nothing of it
    err = caught.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    assert err.response.headers["Retry-After"] in ("1", "2")
    rec = r.record()
    assert rec["status"] == 429 and rec["key_label"] is None
    assert len(rec["keys_skipped"]) == 2

    # with a fallback route the fallback answers; multi is not knocked on again
    status, _, raw = r.chat("multi/fb")
    assert status == 200 and chat_text(raw) == "hello from s1"
    assert r.keys_of("tag-3") == [KEY_SPARE]
    rec = r.record()
    assert rec["provider"] == "spare" and rec["key_label"] == "KEY_SPARE"
    assert [s.split(":")[0] for s in rec["keys_skipped"]] == ["multi KEY_A", "multi KEY_B"]


# ---------------------------------------------------------------- other protocols


def test_messages_429_and_401_move_to_the_next_key(rig) -> None:
    r = rig(
        {KEY_A: rate_limited_header(1), KEY_B: REJECTED, KEY_C: OK},
        ("env:KEY_A", "env:KEY_B", "env:KEY_C"),
    )
    message = r.anthropic().messages.create(
        model="multi/m", max_tokens=64, messages=[{"role": "user", "content": r.tag()}]
    )
    assert [b.text for b in message.content if b.type == "text"] == ["hello from m1"]
    assert r.keys_of("tag-1") == [KEY_A, KEY_B, KEY_C]
    rec = r.record()
    assert rec["endpoint"] == "messages" and rec["key_label"] == "KEY_C"
    assert [a["status"] for a in rec["attempts"]] == [429, 502, 200]
    assert len(r.wait_notices(1)) == 1

    # streamed: KEY_A rests, KEY_B is set aside: only KEY_C is asked
    status, headers, raw = r.raw(
        "/v1/messages",
        {
            "model": "multi/m",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": r.tag()}],
        },
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    streamed = anthropic_grammar.validate(anthropic_grammar.parse_sse(raw))
    assert [b["text"] for b in streamed["content"] if b["type"] == "text"] == ["hello from m1"]
    assert r.keys_of("tag-2") == [KEY_C]
    rec = r.record()
    assert rec["key_label"] == "KEY_C" and len(rec["keys_skipped"]) == 2
    assert len(r.wait_notices(2, timeout=0.3)) == 1


def test_messages_every_key_resting_is_anthropic_s_429_with_retry_after(rig) -> None:
    r = rig({KEY_A: rate_limited_header(2), KEY_B: rate_limited_header(2)})
    r.chat()  # both answer 429 and rest
    before = len(r.fake.requests)
    with pytest.raises(anthropic.RateLimitError) as caught:
        r.anthropic().messages.create(
            model="multi/m", max_tokens=64, messages=[{"role": "user", "content": r.tag()}]
        )
    assert len(r.fake.requests) == before
    assert caught.value.response.headers["Retry-After"] in ("1", "2")
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_messages_every_key_rejected_is_a_502(rig) -> None:
    r = rig({KEY_A: REJECTED, KEY_B: REJECTED})
    with pytest.raises(anthropic.APIStatusError) as caught:
        r.anthropic().messages.create(
            model="multi/m", max_tokens=64, messages=[{"role": "user", "content": r.tag()}]
        )
    assert caught.value.status_code == 502
    assert "rejected" in str(caught.value)
    assert r.keys_of("tag-1") == [KEY_A, KEY_B]
    assert len(r.wait_notices(2)) == 2


def test_responses_429_and_403_move_to_the_next_key(rig) -> None:
    r = rig(
        {KEY_A: FORBIDDEN, KEY_B: rate_limited_header(1), KEY_C: OK},
        ("env:KEY_A", "env:KEY_B", "env:KEY_C"),
    )
    events = list(r.openai().responses.create(model="multi/m", input=r.tag(), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert events[-1].response.output_text == "hello from m1"
    assert r.keys_of("tag-1") == [KEY_A, KEY_B, KEY_C]
    rec = r.record()
    assert rec["endpoint"] == "responses" and rec["key_label"] == "KEY_C"
    assert [(a["key"], a["status"]) for a in rec["attempts"]] == [
        ("KEY_A", 502),
        ("KEY_B", 429),
        ("KEY_C", 200),
    ]
    assert len(r.wait_notices(1)) == 1

    status, _, raw = r.raw("/v1/responses", {"model": "multi/m", "input": r.tag(), "stream": True})
    assert status == 200
    final = responses_grammar.validate(responses_grammar.parse_sse(raw))
    assert final["status"] == "completed"
    texts = [
        part["text"]
        for item in final["output"]
        if item["type"] == "message"
        for part in item["content"]
    ]
    assert texts == ["hello from m1"]
    assert r.keys_of("tag-2") == [KEY_C]
    assert len(r.wait_notices(2, timeout=0.3)) == 1


def test_responses_every_key_resting_is_a_429_with_retry_after(rig) -> None:
    r = rig({KEY_A: rate_limited_header(2), KEY_B: rate_limited_header(2)})
    r.chat()
    before = len(r.fake.requests)
    with pytest.raises(openai.RateLimitError) as caught:
        r.openai().responses.create(model="multi/m", input=r.tag(), stream=True)
    assert len(r.fake.requests) == before
    assert caught.value.response.headers["Retry-After"] in ("1", "2")


# ---------------------------------------------------------------- the page


def test_the_keys_api_shows_each_key_by_label_and_state_never_its_value(rig) -> None:
    r = rig(
        {KEY_A: rate_limited_header(2), KEY_B: REJECTED, KEY_C: OK},
        ("env:KEY_A", "env:KEY_B", "env:KEY_C", "env:KEY_UNSET"),
    )
    assert [(k["label"], k["state"]) for k in r.page_keys()["multi"]] == [
        ("KEY_A", "ready"),
        ("KEY_B", "ready"),
        ("KEY_C", "ready"),
        ("KEY_UNSET", "missing"),
    ]
    status, _, _ = r.chat()
    assert status == 200
    asked_at = time.time()
    page = r.page_keys()
    rows = {k["label"]: k for k in page["multi"]}
    assert rows["KEY_A"]["state"] == "cooling"
    assert 1.0 < rows["KEY_A"]["until"] - asked_at <= 2.1
    assert rows["KEY_A"]["models"] == {"m1": rows["KEY_A"]["until"]}
    assert rows["KEY_B"] == {"label": "KEY_B", "state": "rejected", "why": "401 Invalid API Key"}
    assert rows["KEY_C"] == {"label": "KEY_C", "state": "ready"}
    assert rows["KEY_UNSET"] == {"label": "KEY_UNSET", "state": "missing"}
    assert [k["label"] for k in page["spare"]] == ["KEY_SPARE"]


def test_a_missing_key_is_passed_over_for_the_next_one(rig) -> None:
    """``api_keys = ["env:KEY_UNSET", "env:KEY_B"]`` with $KEY_UNSET not set: the request
    is answered with KEY_B."""
    r = rig({KEY_B: OK}, ("env:KEY_UNSET", "env:KEY_B"))
    status, _, raw = r.chat()
    assert status == 200, raw
    assert r.keys_of("tag-1") == [KEY_B]
    assert r.record()["key_label"] == "KEY_B"


def test_the_keys_api_says_a_provider_with_one_set_key_of_two_is_ok(rig) -> None:
    r = rig({KEY_B: OK}, ("env:KEY_UNSET", "env:KEY_B"))
    status, _, raw = http("GET", r.server.root_url + "/_trayproxy/api/keys")
    assert status == 200
    multi = next(p for p in json.loads(raw)["providers"] if p["name"] == "multi")
    assert not multi["needs_key"]
    assert multi["state"] == "1 of 2 keys ready"
