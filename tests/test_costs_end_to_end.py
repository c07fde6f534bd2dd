"""What a request cost, end to end: real ``openai`` and ``anthropic`` SDK requests through an
in-process trayproxy to the strict keyed fake, and the record's ``cost`` recomputed from the
usage the fake reported. Prices from a model mapping, from its provider, or from the
provider's published list (read once, only when ``price_list`` asks for it); a price that is
not known is None, never 0; the daily budget is said once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests import anthropic_grammar, responses_grammar
from tests.conftest import settled
from tests.keyed_upstream import KeyedUpstream, Usage
from tests.notice_box import NoticeBox
from tests.sdk_clients import anthropic_client, openai_client
from trayproxy.config.parse import parse
from trayproxy.records import queries
from trayproxy.server.proxy_server import ProxyServer

KEY = "sk-costs-0123456789"
PRICE = {"input": 0.6, "output": 2.5, "cached_input": 0.15}  # dollars per million tokens
PRICE_TOML = "price = { input = 0.6, output = 2.5, cached_input = 0.15 }"
USAGE = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400, reasoning_tokens=50)


def dollars(usage: Usage, input: float, output: float, cached_input: float) -> float:
    """The cost as the issue defines it, from the provider's own counts."""
    fresh = usage.prompt_tokens - usage.cached_tokens
    return (
        fresh * input + usage.cached_tokens * cached_input + usage.completion_tokens * output
    ) / 1e6


def config_text(fake: KeyedUpstream, extra: str = "") -> str:
    return f"""
[server]
host = "127.0.0.1"
port = 0

[providers.keyed]
base_url = "{fake.base_url}"
api_key = "{KEY}"

[providers.pricey]
base_url = "{fake.base_url}"
api_key = "{KEY}"
price = {{ input = 1.0, output = 4.0 }}

[models."priced/model"]
provider = "keyed"
model = "m-priced"
{PRICE_TOML}

[models."plain/model"]
provider = "keyed"
model = "m-plain"

[models."pricey/default"]
provider = "pricey"
model = "m-provider-priced"

[models."pricey/own"]
provider = "pricey"
model = "m-own-price"
{PRICE_TOML}
{extra}
"""


@pytest.fixture
def fake() -> Iterator[KeyedUpstream]:
    with KeyedUpstream({KEY: "ok"}) as upstream:
        yield upstream


@pytest.fixture
def server(fake: KeyedUpstream, started) -> ProxyServer:
    return started(parse(config_text(fake), file="costs.toml"))


oai, claude = openai_client, anthropic_client


MESSAGES = [{"role": "user", "content": "How much was that?"}]


def records(server: ProxyServer, total: int) -> list[dict[str, Any]]:
    """All ``total`` records of the requests made so far, oldest first (waiting for the
    last ones: a client can finish reading a stream a moment before its record is filed)."""
    settled(server.logbook, total)
    found = [r.to_dict() for r in reversed(server.logbook.recent(total + 1))]
    assert len(found) == total, [r["client_model"] for r in found]
    return found


# ---------------------------------------------------------------- one request in each protocol


def ask_chat(server: ProxyServer, model: str, stream: bool) -> dict[str, Any]:
    """Chat Completions; what the client saw of the answer and its usage."""
    client = oai(server)
    if not stream:
        done = client.chat.completions.create(model=model, messages=MESSAGES)
        usage = done.usage.model_dump() if done.usage is not None else None
        return {"text": done.choices[0].message.content, "usage": usage}
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = [c.usage.model_dump() for c in chunks if c.usage is not None]
    return {"text": text, "usage": usage[-1] if usage else None}


def ask_messages(server: ProxyServer, model: str, stream: bool) -> dict[str, Any]:
    client = claude(server)
    if not stream:
        done = client.messages.create(model=model, max_tokens=300, messages=MESSAGES)
        text = "".join(b.text for b in done.content if b.type == "text")
        return {"text": text, "usage": done.usage.model_dump()}
    with client.messages.with_streaming_response.create(
        model=model, max_tokens=300, messages=MESSAGES, stream=True
    ) as resp:
        assert resp.http_response.status_code == 200
        raw = b"".join(resp.iter_bytes())
    message = anthropic_grammar.validate(anthropic_grammar.parse_sse(raw))
    assert "error" not in message, message
    text = "".join(b["text"] for b in message["content"] if b["type"] == "text")
    return {"text": text, "usage": message["usage"]}


def ask_responses(server: ProxyServer, model: str, stream: bool) -> dict[str, Any]:
    client = oai(server)
    if not stream:
        done = client.responses.create(model=model, input="How much was that?")
        assert done.usage is not None
        return {"text": done.output_text, "usage": done.usage.model_dump()}
    with client.responses.with_streaming_response.create(
        model=model, input="How much was that?", stream=True
    ) as resp:
        assert resp.http_response.status_code == 200
        raw = b"".join(resp.iter_bytes())
    response = responses_grammar.validate(responses_grammar.parse_sse(raw))
    assert response["status"] == "completed", response
    text = "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )
    return {"text": text, "usage": response["usage"]}


ASK = {"chat": ask_chat, "messages": ask_messages, "responses": ask_responses}


def client_counts(protocol: str, usage: dict[str, Any]) -> tuple[int, int, int]:
    """(all prompt tokens, cached, completion) as each protocol tells its client."""
    if protocol == "chat":
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        return usage["prompt_tokens"], cached, usage["completion_tokens"]
    if protocol == "messages":  # Anthropic counts cache reads apart from input_tokens
        cached = usage.get("cache_read_input_tokens") or 0
        return usage["input_tokens"] + cached, cached, usage["output_tokens"]
    cached = usage["input_tokens_details"]["cached_tokens"]
    return usage["input_tokens"], cached, usage["output_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("protocol", sorted(ASK))
def test_a_mapping_price_gives_the_cost_of_the_providers_usage(
    server: ProxyServer, fake: KeyedUpstream, protocol: str, stream: bool
) -> None:
    fake.usage = USAGE
    seen = ASK[protocol](server, "priced/model", stream)
    assert seen["text"] == "hello from m-priced"
    assert seen["usage"] is not None
    assert client_counts(protocol, seen["usage"]) == (1000, 400, 200)

    (rec,) = records(server, 1)
    assert rec["status"] == 200 and rec["stream"] is stream
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (1000, 200)
    assert (rec["cached_tokens"], rec["reasoning_tokens"]) == (400, 50)
    assert rec["tokens_estimated"] is False
    expected = (600 * 0.6 + 400 * 0.15 + 200 * 2.5) / 1e6
    assert expected == pytest.approx(dollars(USAGE, **PRICE))
    assert rec["cost"] == pytest.approx(expected, rel=1e-9)


def test_the_cost_follows_the_usage_reported_not_a_constant(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    usage = Usage(prompt_tokens=12_345, completion_tokens=678, cached_tokens=2_345)
    fake.usage_by_model["m-priced"] = usage
    ask_chat(server, "priced/model", stream=False)
    ask_chat(server, "priced/model", stream=True)
    for rec in records(server, 2):
        assert rec["cached_tokens"] == 2_345
        assert rec["cost"] == pytest.approx(dollars(usage, **PRICE), rel=1e-9)


def test_cached_tokens_cost_the_input_price_when_no_cached_price_is_set(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    fake.usage = USAGE
    ask_chat(server, "pricey/default", stream=False)
    (rec,) = records(server, 1)
    assert rec["cost"] == pytest.approx(dollars(USAGE, 1.0, 4.0, 1.0), rel=1e-9)


def test_the_providers_price_applies_and_the_mappings_wins(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    fake.usage = Usage(prompt_tokens=3000, completion_tokens=500, cached_tokens=1000)
    ask_chat(server, "pricey/default", stream=True)
    ask_messages(server, "pricey/own", stream=False)
    ask_responses(server, "plain/model", stream=False)
    by_provider, by_mapping, unpriced = records(server, 3)
    assert by_provider["client_model"] == "pricey/default"
    assert by_provider["cost"] == pytest.approx(dollars(fake.usage, 1.0, 4.0, 1.0), rel=1e-9)
    assert by_mapping["client_model"] == "pricey/own"
    assert by_mapping["cost"] == pytest.approx(dollars(fake.usage, **PRICE), rel=1e-9)
    assert unpriced["client_model"] == "plain/model"
    assert unpriced["prompt_tokens"] == 3000 and unpriced["cost"] is None  # unknown, not 0


# ---------------------------------------------------------------- a provider's price list


class SlowList(KeyedUpstream):
    """The keyed fake whose price list takes 0.4 s to come (OpenRouter's is 1.5 MB): the
    first answer is over before it is read."""

    async def _models(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return await super()._models(request)


@pytest.fixture
def listed() -> Iterator[KeyedUpstream]:
    """A provider that publishes its prices (OpenRouter's /models)."""
    with SlowList({KEY: "ok"}) as upstream:
        yield upstream


LISTED = """
[providers.listed]
base_url = "{url}"
api_key = "{key}"
price_list = true

[models."listed/paid"]
provider = "listed"
model = "paid-model"

[models."listed/free"]
provider = "listed"
model = "free-model"

[models."listed/unpriced"]
provider = "listed"
model = "unpriced-model"

[models."plain/paid"]
provider = "keyed"
model = "paid-model"
"""


def test_a_price_list_is_read_once_and_prices_the_first_streamed_request(
    fake: KeyedUpstream, listed: KeyedUpstream, started
) -> None:
    extra = LISTED.format(url=listed.base_url, key=KEY)
    server = started(parse(config_text(fake, extra), file="costs.toml"))
    listed.usage = fake.usage = USAGE
    assert listed.models_fetches == 0  # not at start: only once the provider is used

    first = ask_messages(server, "listed/paid", stream=True)
    assert first["text"] == "hello from paid-model"
    (rec,) = records(server, 1)
    assert listed.models_fetches == 1
    # the catalog's paid-model: $0.0000006 / $0.0000025 / $0.00000015 a token
    assert rec["cost"] == pytest.approx(dollars(USAGE, 0.6, 2.5, 0.15), rel=1e-9)

    ask_chat(server, "listed/paid", stream=True)
    ask_responses(server, "listed/free", stream=True)
    ask_chat(server, "listed/unpriced", stream=False)
    ask_chat(server, "listed/unpriced", stream=True)
    ask_chat(server, "plain/paid", stream=True)
    paid, free, unpriced, unpriced_streamed, plain = records(server, 6)[1:]
    assert paid["cost"] == pytest.approx(dollars(USAGE, 0.6, 2.5, 0.15), rel=1e-9)
    assert free["client_model"] == "listed/free" and free["cost"] == 0.0
    assert unpriced["cost"] is None and unpriced_streamed["cost"] is None
    assert unpriced["prompt_tokens"] == 1000
    # the same model on a provider that does not publish prices: unknown
    assert plain["client_model"] == "plain/paid" and plain["cost"] is None

    assert listed.models_fetches == 1  # read once, not per request
    assert fake.models_fetches == 0  # never asked of a provider without price_list
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"]

    summary = queries.usage_of(server.logbook.recent(50), 1)
    today = {row["model"]: row for row in summary["today"]}
    assert today["listed/unpriced"]["cost"] is None
    assert today["listed/unpriced"]["unpriced"] == 2
    assert today["plain/paid"]["cost"] is None
    assert today["listed/free"]["cost"] == 0.0 and today["listed/free"]["unpriced"] == 0
    assert today["listed/paid"]["cost"] == pytest.approx(
        2 * dollars(USAGE, 0.6, 2.5, 0.15), rel=1e-9
    )
    assert summary["today_cost"]["unpriced"] == 3
    assert summary["today_cost"]["cost"] == pytest.approx(today["listed/paid"]["cost"])


def test_the_first_streamed_chat_request_has_its_price_too(
    fake: KeyedUpstream, listed: KeyedUpstream, started
) -> None:
    server = started(parse(config_text(fake, LISTED.format(url=listed.base_url, key=KEY))))
    listed.usage = USAGE
    assert ask_chat(server, "listed/paid", stream=True)["text"] == "hello from paid-model"
    (rec,) = records(server, 1)
    assert rec["cost"] == pytest.approx(dollars(USAGE, 0.6, 2.5, 0.15), rel=1e-9)


def test_a_provider_without_price_list_is_never_asked_for_its_models(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    for stream in (False, True):
        ask_chat(server, "plain/model", stream)
        ask_messages(server, "priced/model", stream)
    assert fake.models_fetches == 0
    assert {r.path for r in fake.requests} == {"/v1/chat/completions"}


# ---------------------------------------------------------------- the daily budget


def test_the_daily_budget_is_said_once(fake: KeyedUpstream) -> None:
    # [costs] daily_budget takes 0.01 at least: each request below costs $0.004
    fake.usage = Usage(prompt_tokens=5000, completion_tokens=400, cached_tokens=0)
    each = dollars(fake.usage, **PRICE)
    assert each == pytest.approx(0.004)
    notices = NoticeBox()
    config = parse(config_text(fake, "\n[costs]\ndaily_budget = 0.01\n"), file="costs.toml")
    server = ProxyServer(config, notify=notices)
    server.start()
    try:
        for stream in (False, True):  # $0.008: under the budget
            ask_chat(server, "priced/model", stream)
        settled(server.logbook, 2)
        assert notices.wait(1, timeout=0.3) == []

        ask_messages(server, "priced/model", stream=True)  # $0.012: past it
        assert notices.wait(1), "no notice when the budget was passed"
        for _ in range(3):  # later requests say nothing more
            ask_responses(server, "priced/model", stream=False)
        costs = [r["cost"] for r in records(server, 6)]
        assert costs == pytest.approx([each] * 6, rel=1e-9)
        said = notices.wait(2, timeout=0.3)  # a second notice would come from a thread too
    finally:
        server.stop(grace=1)
    assert len(said) == 1, said
    title, text = said[0]
    assert "budget" in title.lower()
    assert "$0.01" in text and "daily_budget" in text
    assert threading.main_thread().name not in notices.threads  # from a worker thread


# ---------------------------------------------------------------- estimated tokens


class NoUsageUpstream(KeyedUpstream):
    """The keyed fake, but model ``no-usage`` reports no usage (``"usage": null``), as some
    providers do."""

    def _usage(self, model: str) -> Any:
        return None if model == "no-usage" else super()._usage(model)


QUIET = f"""
[models."quiet/model"]
provider = "keyed"
model = "no-usage"
{PRICE_TOML}
"""


def assert_estimated(rec: dict[str, Any]) -> None:
    assert rec["status"] == 200
    assert rec["tokens_estimated"] is True, str(rec)
    prompt, completion = rec["prompt_tokens"], rec["completion_tokens"]
    assert prompt and prompt > 0 and completion and completion > 0, rec
    assert not rec["cached_tokens"]
    estimated = Usage(prompt, completion, 0, 0)
    assert rec["cost"] == pytest.approx(dollars(estimated, **PRICE), rel=1e-9)


def test_a_provider_that_reports_no_usage_is_priced_from_the_estimate(started) -> None:
    with NoUsageUpstream({KEY: "ok"}) as fake:
        server = started(parse(config_text(fake, QUIET), file="costs.toml"))
        ask_chat(server, "quiet/model", stream=False)
        ask_messages(server, "quiet/model", stream=False)
        ask_messages(server, "quiet/model", stream=True)
        ask_responses(server, "quiet/model", stream=True)
        for rec in records(server, 4):
            assert_estimated(rec)
        summary = queries.usage_of(server.logbook.recent(10), 1)
        row = {r["model"]: r for r in summary["today"]}["quiet/model"]
        assert row["cost_estimated"] == 4 and row["estimated"] == 4


def test_a_streamed_chat_without_usage_is_priced_from_the_estimate(started) -> None:
    """The same through the Chat stream relay, whose client (the openai SDK) hangs up as soon
    as it has ``[DONE]``: the estimate must not be lost to that. A long prompt (its estimate
    takes milliseconds) and 16 requests, so that such a race shows."""
    with NoUsageUpstream({KEY: "ok"}) as fake:
        server = started(parse(config_text(fake, QUIET), file="costs.toml"))
        client = oai(server)
        prompt = [{"role": "user", "content": "word " * 60_000}]
        for _ in range(16):
            chunks = client.chat.completions.create(
                model="quiet/model", messages=prompt, stream=True
            )
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
                "hello from no-usage"
            )
        for rec in records(server, 16):
            assert_estimated(rec)
