"""``POST /v1/responses`` end to end: the ``openai`` SDK's Responses calls (as Codex and the
Agents SDK make them) through trayproxy to strict fake providers that speak only Chat
Completions (tests/dialect_upstream.py: Kimi, DeepSeek, Groq, Mistral), with the raw streams
held to the Responses event grammar (tests/responses_grammar.py), and passed through to a
provider that serves the Responses API itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, http
from tests.dialect_upstream import ANSWER_PREFIX, GOOD_KEY, TOOL_IDS, DialectUpstream
from tests.fake_upstream import FakeUpstream
from tests.responses_grammar import parse_sse, validate
from tests.test_responses_translation import EXEC
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

CHAT_ONLY = {
    "nvidia/kimi-k2-thinking": ("nvidia", "kimi-k2-thinking", "kimi"),
    "deepseek/reasoner": ("deepseek", "deepseek-reasoner", "deepseek"),
    "groq/gpt-oss-120b": ("groq", "groq-gpt-oss", "groq"),
    "mistral/large": ("mistral", "mistral-large", "mistral"),
}
READ_FILE = {
    "type": "function",
    "name": "read_file",
    "description": "Read a file",
    "parameters": {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    },
}


def config_text(chat_url: str, native_url: str) -> str:
    lines = ['[server]\nhost = "127.0.0.1"\nport = 0\n']
    for provider in ("nvidia", "deepseek", "groq", "mistral"):
        lines += [
            f"[providers.{provider}]",
            f'base_url = "{chat_url}/v1"',
            f'api_key = "{GOOD_KEY}"',
            f'profile = "{provider}"',
            "",
        ]
    lines += [  # a provider that serves /v1/responses itself, as OpenAI does
        "[providers.openai]",
        f'base_url = "{native_url}/v1"',
        f'api_key = "{UPSTREAM_KEY}"',
        'profile = "openai-api"',
        "",
    ]
    for client_id, (provider, upstream, _) in CHAT_ONLY.items():
        lines += [f'[models."{client_id}"]', f'provider = "{provider}"', f'model = "{upstream}"']
    return "\n".join(lines) + "\n"


class Setup:
    def __init__(self) -> None:
        self.chat = DialectUpstream().start()
        self.native = FakeUpstream().start()
        text = config_text(self.chat.url, self.native.url)
        self.server = ProxyServer(parse(text, file="responses.toml"))
        self.server.start()

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url, api_key=CLIENT_KEY, max_retries=0)

    def stream(self, body: dict[str, Any]) -> dict[str, Any]:
        """A streamed request, its raw events held to the grammar; its final response."""
        status, _, raw = http(
            "POST",
            self.server.base_url + "/responses",
            json.dumps({**body, "stream": True}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"},
        )
        assert status == 200, raw
        return validate(parse_sse(raw))

    def stop(self) -> None:
        self.server.stop(grace=1)
        self.chat.stop()
        self.native.stop()


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    s = Setup()
    yield s
    s.stop()


def codex_turn(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "input": [
            {"type": "message", "role": "developer", "content": "You are a coding agent."},
            {"type": "message", "role": "user", "content": "What does README.md say?"},
        ],
        "tools": [
            READ_FILE,
            {"type": "namespace", "name": "mcp", "tools": [{**EXEC, "name": "mcp_exec"}]},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
    }


@pytest.mark.parametrize("client_id", list(CHAT_ONLY))
def test_codex_s_tool_round_trip_through_a_chat_only_provider(setup: Setup, client_id: str) -> None:
    flavor = CHAT_ONLY[client_id][2]
    body = codex_turn(client_id)
    response = setup.stream(body)
    kinds = [item["type"] for item in response["output"]]
    assert kinds[-1] == "function_call"
    assert ("reasoning" in kinds) == (flavor != "mistral")
    call = response["output"][-1]
    assert call["name"] == "read_file" and json.loads(call["arguments"]) == {"path": "README.md"}
    assert call["call_id"] == TOOL_IDS[flavor]  # the provider's own id
    assert response["usage"]["input_tokens"] > 0
    # the next turn, as Codex sends it: the output items back, then the tool's output
    follow = {
        **body,
        "input": [
            *body["input"],
            *response["output"],
            {"type": "function_call_output", "call_id": call["call_id"], "output": "hello"},
        ],
    }
    answer = setup.stream(follow)
    message = answer["output"][-1]
    assert message["type"] == "message"
    assert message["content"][0]["text"] == ANSWER_PREFIX + "hello"
    sent = setup.chat.requests[-1]
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == TOOL_IDS[flavor]
    if flavor in ("kimi", "deepseek"):
        assert assistant["reasoning_content"]
    assert "web_search" not in json.dumps(sent["tools"])
    record = setup.server.logbook.recent(1)[0].to_dict()
    assert record["endpoint"] == "responses"
    assert "Responses API → Chat Completions" in record["rewrites"]


def test_the_openai_sdk_creates_and_streams_responses(setup: Setup) -> None:
    client = setup.client()
    ask = {"model": "nvidia/kimi-k2-thinking", "input": "Read README.md", "tools": [READ_FILE]}
    first = client.responses.create(**ask)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "read_file" and first.status == "completed"
    follow = [
        {"role": "user", "content": "Read README.md"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "hi"},
    ]
    with client.responses.stream(model=ask["model"], input=follow, tools=[READ_FILE]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == ANSWER_PREFIX + "hi" == final.output_text
    assert final.usage is not None and final.usage.output_tokens > 0


def test_previous_response_id_is_a_clear_error(setup: Setup) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        setup.client().responses.create(
            model="nvidia/kimi-k2-thinking", input="more", previous_response_id="resp_1"
        )
    assert err.value.code == "previous_response_not_found"
    assert "keeps no conversations" in str(err.value)


def test_a_provider_that_serves_responses_gets_them_untouched(setup: Setup) -> None:
    body = {"model": "openai/gpt-5", "input": "hi", "store": False, "include": ["x"]}
    status, _, _ = http(
        "POST",
        setup.server.base_url + "/responses",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert status == 200
    seen = setup.native.last
    assert seen.path == "/v1/responses"
    assert seen.body == {**body, "model": "gpt-5"}
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_the_openai_agents_sdk_runs_a_tool_through_a_chat_only_provider(setup: Setup) -> None:
    """The Agents SDK's default model speaks the Responses API: its agent calls a tool and
    answers with the tool's result, through trayproxy to a Kimi-like chat-only provider."""
    import asyncio

    import agents

    read: list[str] = []

    @agents.function_tool
    def read_file(path: str) -> str:
        """Read a file."""
        read.append(path)
        return "the agents SDK read it"

    client = openai.AsyncOpenAI(base_url=setup.server.base_url, api_key=CLIENT_KEY, max_retries=0)
    model = agents.OpenAIResponsesModel(model="nvidia/kimi-k2-thinking", openai_client=client)
    agent = agents.Agent(name="reader", instructions="Read files.", model=model, tools=[read_file])
    agents.set_tracing_disabled(True)  # tracing would report to OpenAI

    result = asyncio.run(agents.Runner.run(agent, "What does README.md say?"))
    assert read == ["README.md"]
    assert result.final_output == ANSWER_PREFIX + "the agents SDK read it"


def test_rate_limits_reach_codex_with_the_code_and_the_wait_it_reads(serve) -> None:
    """Codex waits as long as "Please try again in N s" says, for rate_limit_exceeded."""
    server = serve()
    client = openai.OpenAI(base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="fake/error-429", input="hi")
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.message.endswith("Please try again in 7s.")
    assert err.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("status", "said", "code"),
    [
        (400, "This model's maximum context length is 131072 tokens.", "context_length_exceeded"),
        (402, "Insufficient balance", "insufficient_quota"),
        (400, "Invalid value for temperature", "invalid_value"),  # left as the provider said
    ],
)
def test_provider_errors_get_the_codes_codex_acts_on(status: int, said: str, code: str) -> None:
    from aiohttp.test_utils import make_mocked_request

    from trayproxy.gateway.errors import error_response, in_client_shape

    provider = error_response(status, said, code="invalid_value")
    shaped = in_client_shape(make_mocked_request("POST", "/v1/responses"), provider)
    error = json.loads(shaped.body)["error"]
    assert error["code"] == code and error["message"] == said
    unchanged = in_client_shape(make_mocked_request("POST", "/v1/chat/completions"), provider)
    assert json.loads(unchanged.body)["error"]["code"] == "invalid_value"


def test_structured_output_reaches_the_provider_as_response_format(serve, upstream) -> None:
    server = serve()
    client = openai.OpenAI(base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0)
    schema = {
        "type": "object",
        "properties": {"greeting": {"type": "string"}},
        "required": ["greeting"],
        "additionalProperties": False,
    }
    answer = client.responses.create(
        model="nvidia/kimi-k2-thinking",
        input="Greet me",
        text={
            "format": {"type": "json_schema", "name": "greeting", "schema": schema, "strict": True}
        },
    )
    assert answer.output_text == "Hello from the fake upstream."
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "greeting", "schema": schema, "strict": True},
    }
