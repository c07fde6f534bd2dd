"""Provider profiles end to end: Continue's transport and the openai SDK through trayproxy to
fake providers that refuse the wrong dialect exactly as the real ones do
(tests/dialect_upstream.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY, http, post_json, settled
from tests.dialect_upstream import (
    ANSWER_PREFIX,
    GOOD_KEY,
    GROQ_MAX_OUTPUT,
    TOOL_IDS,
    DialectUpstream,
    thoughts,
)
from tests.test_continue_client import JS_DIR, node_executable
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

AGENT = JS_DIR / "continue_agent.mjs"

# client id -> (provider profile, upstream model)
MODELS = {
    "nvidia/kimi-k2-thinking": ("nvidia", "kimi-k2-thinking"),
    "deepseek/reasoner": ("deepseek", "deepseek-reasoner"),
    "groq/gpt-oss-120b": ("groq", "groq-gpt-oss"),
    "mistral/large": ("mistral", "mistral-large"),
    "ollama/qwen3": ("ollama", "ollama-qwen3"),
}
FLAVOR = {"nvidia": "kimi", "deepseek": "deepseek", "groq": "groq", "mistral": "mistral"}
FLAVOR["ollama"] = "ollama"


def config_text(url: str) -> str:
    lines = []
    for profile in FLAVOR:
        lines += [
            f"[providers.{profile}]",
            f'base_url = "{url}/v1"',
            f'api_key = "{GOOD_KEY}"',
            f'profile = "{profile}"',
            "",
        ]
    # the same Kimi behind a provider with no profile: what users get without trayproxy's help
    lines += ["[providers.plain]", f'base_url = "{url}/v1"', f'api_key = "{GOOD_KEY}"', ""]
    for client_id, (provider, upstream) in MODELS.items():
        lines += [f'[models."{client_id}"]', f'provider = "{provider}"', f'model = "{upstream}"']
        if provider == "groq":
            lines.append(f"max_output_tokens = {GROQ_MAX_OUTPUT}")
        lines.append("")
    lines += ['[models."plain/kimi"]', 'provider = "plain"', 'model = "kimi-k2-thinking"']
    return '[server]\nhost = "127.0.0.1"\nport = 0\n' + "\n".join(lines)


class Setup:
    def __init__(self) -> None:
        self.upstream = DialectUpstream().start()
        self.server = self._server()

    def _server(self) -> ProxyServer:
        server = ProxyServer(parse(config_text(self.upstream.url), file="dialects.toml"))
        server.start()
        return server

    def restart(self) -> None:
        self.server.stop(grace=1.0)
        self.server = self._server()

    def records(self, count: int) -> list[dict[str, Any]]:
        settled(self.server.logbook, count)
        return [r.to_dict() for r in self.server.logbook.recent(count)]

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.server.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30
        )


@pytest.fixture
def setup() -> Iterator[Setup]:
    s = Setup()
    yield s
    s.server.stop(grace=1.0)
    s.upstream.stop()


def run_agent(api_base: str, model: str, *, stream: bool = True) -> tuple[int, Any, str]:
    cmd = [node_executable(), str(AGENT), "--api-base", api_base, "--model", model]
    cmd += ["--api-key", CLIENT_KEY] + ([] if stream else ["--no-stream"])
    proc = subprocess.run(
        cmd, cwd=JS_DIR, env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    result = json.loads(proc.stdout) if proc.returncode == 0 else None
    return proc.returncode, result, proc.stderr


def notes(record: dict[str, Any]) -> str:
    return " | ".join(record["rewrites"])


# ------------------------------------------------------------------ Continue's agent loop


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("model", list(MODELS))
def test_continue_agent_completes_through_every_profile(
    setup: Setup, model: str, stream: bool
) -> None:
    code, result, stderr = run_agent(setup.server.base_url, model, stream=stream)
    assert code == 0, f"Continue's agent failed through {model}: {stderr}"
    flavor = FLAVOR[MODELS[model][0]]
    first, second = result["turns"]

    # turn 1: a tool call with the provider's own id; turn 2: the answer built on the tool
    assert [c["id"] for c in first["tool_calls"]] == [TOOL_IDS[flavor]]
    assert first["tool_calls"][0]["function"]["name"] == "read_file"
    assert first["finish_reason"] == "tool_calls"
    assert second["content"] == ANSWER_PREFIX + result["tool_result"]
    assert second["finish_reason"] == "stop"

    if flavor != "mistral":  # the user sees every piece of the model's thinking
        assert first["reasoning"] == "".join(thoughts(flavor, 1))
        assert second["reasoning"] == "".join(thoughts(flavor, 2))
        if stream:  # in chunks Continue reads as reasoning, before the answer
            assert second["fields"].index("reasoning") < second["fields"].index("content")

    follow_up = setup.upstream.requests[-1]
    assistant = next(m for m in follow_up["messages"] if m["role"] == "assistant")
    records = setup.records(2)
    if flavor in ("kimi", "deepseek"):  # the reasoning went back, word for word
        assert assistant["reasoning_content"] == "".join(thoughts(flavor, 1))
        assert "reasoning_content restored for 1 turn" in notes(records[0])
        assert "reasoning remembered for 1 tool call" in notes(records[1])
    else:
        assert "reasoning_content" not in assistant
    if flavor == "mistral" and stream:
        assert "stream_options" not in follow_up
        assert "removed: stream_options" in notes(records[0])


def test_without_a_profile_kimi_refuses_the_second_turn(setup: Setup) -> None:
    """The fake holds Continue to Kimi's rule; the profile is what makes the loop work."""
    code, _, stderr = run_agent(setup.server.base_url, "plain/kimi")
    assert code == 1
    assert "turn 2" in stderr
    assert "reasoning_content is missing in assistant tool call message at index 2" in stderr
    record = setup.records(1)[0]
    assert record["status"] == 400
    assert "reasoning_content is missing" in record["error"]


def test_forgotten_reasoning_is_sent_empty_after_a_restart(setup: Setup) -> None:
    code, result, _ = run_agent(setup.server.base_url, "nvidia/kimi-k2-thinking")
    assert code == 0
    setup.restart()  # the memory is gone; the conversation goes on
    history = [
        {"role": "user", "content": "What does README.md say?"},
        {"role": "assistant", "content": "", "tool_calls": result["turns"][0]["tool_calls"]},
        {"role": "tool", "tool_call_id": TOOL_IDS["kimi"], "content": "hello"},
    ]
    answer = setup.client().chat.completions.create(
        model="nvidia/kimi-k2-thinking", messages=history
    )
    assert answer.choices[0].message.content == ANSWER_PREFIX + "hello"
    assert setup.upstream.requests[-1]["messages"][1]["reasoning_content"] == ""
    assert "reasoning_content sent empty for 1 turn (not remembered)" in notes(setup.records(1)[0])


# ------------------------------------------------------------------ Mistral


FOREIGN_ID = "call_PTLP8xhu3uwZk4l3nlnrrJha"  # an OpenAI-style id from another provider


def foreign_history() -> list[dict[str, Any]]:
    call = {
        "id": FOREIGN_ID,
        "type": "function",
        "function": {"name": "read_file", "arguments": "{}"},
    }
    return [
        {"role": "user", "content": "What does README.md say?"},
        {"role": "assistant", "content": "", "tool_calls": [call], "reasoning_content": "hm"},
        {"role": "tool", "tool_call_id": FOREIGN_ID, "content": "hello"},
    ]


def test_mistral_gets_nine_character_ids_consistently(setup: Setup) -> None:
    direct, _, _ = post_json(
        setup.upstream.url + "/v1/chat/completions",
        {"model": "mistral-large", "messages": foreign_history(), "max_tokens": 10},
    )
    assert direct == 422  # the fake refuses reasoning_content first, then the id
    answer = setup.client().chat.completions.create(
        model="mistral/large", messages=foreign_history(), max_completion_tokens=100
    )
    assert answer.choices[0].message.content == ANSWER_PREFIX + "hello"
    sent = setup.upstream.requests[-1]
    short = sent["messages"][1]["tool_calls"][0]["id"]
    assert len(short) == 9 and short.isalnum()
    assert sent["messages"][2]["tool_call_id"] == short
    assert "reasoning_content" not in sent["messages"][1]
    assert sent["max_tokens"] == 100 and "max_completion_tokens" not in sent
    record = notes(setup.records(1)[0])
    assert "max_completion_tokens → max_tokens" in record
    assert "tool-call ids shortened to 9 characters (2)" in record
    assert "removed from messages: reasoning_content (1)" in record
    # the same conversation sent again maps to the same id
    setup.client().chat.completions.create(model="mistral/large", messages=foreign_history())
    assert setup.upstream.requests[-1]["messages"][1]["tool_calls"][0]["id"] == short


def test_mistral_refusals_pass_through_when_the_id_is_bad_without_a_profile(
    setup: Setup,
) -> None:
    history = foreign_history()
    del history[1]["reasoning_content"]
    status, _, body = post_json(
        setup.upstream.url + "/v1/chat/completions",
        {"model": "mistral-large", "messages": history},
        {"Authorization": f"Bearer {GOOD_KEY}"},
    )
    assert status == 400
    assert b"must be a-z, A-Z, 0-9, with a length of 9" in body


# ------------------------------------------------------------------ Groq


def test_groq_output_cap_and_unsupported_fields(setup: Setup) -> None:
    answer = setup.client().chat.completions.create(
        model="groq/gpt-oss-120b",
        messages=[{"role": "user", "content": "hi", "name": "ada"}],
        max_tokens=200_000,
        logprobs=True,
        top_logprobs=2,
    )
    assert answer.choices[0].message.tool_calls[0].id == TOOL_IDS["groq"]
    # non-streamed reasoning arrives as reasoning_content too
    assert answer.choices[0].message.model_extra["reasoning_content"] == "".join(
        thoughts("groq", 1)
    )
    sent = setup.upstream.requests[-1]
    assert sent["max_tokens"] == GROQ_MAX_OUTPUT
    assert "logprobs" not in sent and "top_logprobs" not in sent
    assert "name" not in sent["messages"][0]
    record = notes(setup.records(1)[0])
    assert f"max_tokens 200000 → {GROQ_MAX_OUTPUT} (the model's max_output_tokens)" in record
    assert "removed: logprobs, top_logprobs" in record
    assert "removed from messages: name (1)" in record


def test_usage_is_counted_but_its_chunk_only_sent_when_asked(setup: Setup) -> None:
    client = setup.client()
    chunks = list(
        client.chat.completions.create(
            model="groq/gpt-oss-120b",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    )
    assert setup.upstream.requests[-1]["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks), "a usage chunk the client did not ask for"
    assert all(chunk.usage is None for chunk in chunks)
    record = setup.records(1)[0]
    assert (record["prompt_tokens"], record["completion_tokens"]) == (20, 9)
    assert "usage chunk removed (the client did not ask for it)" in notes(record)

    asked = list(
        client.chat.completions.create(
            model="groq/gpt-oss-120b",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].choices == [] and asked[-1].usage.completion_tokens == 9
    assert "usage chunk removed" not in notes(setup.records(2)[0])  # the second one


def test_reasoning_and_content_in_one_delta_are_split(setup: Setup) -> None:
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    status, _, body = post_json(
        setup.server.base_url + "/chat/completions",
        {"model": "groq/gpt-oss-120b", "messages": history, "stream": True},
    )
    assert status == 200
    events = [
        json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: {")
    ]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert not any("reasoning" in d for d in deltas)
    assert not any(d.get("content") and d.get("reasoning_content") for d in deltas)
    text = "".join(d.get("reasoning_content", "") for d in deltas)
    assert text == "".join(thoughts("groq", 2))
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER_PREFIX + "ok"
    assert "reasoning sent in chunks of its own (1)" in notes(setup.records(1)[0])


def test_the_page_api_lists_the_rewrites(setup: Setup) -> None:
    run_agent(setup.server.base_url, "nvidia/kimi-k2-thinking")
    settled(setup.server.logbook, 2)
    status, _, body = http("GET", setup.server.root_url + "/_trayproxy/api/logs")
    assert status == 200
    rows = json.loads(body)["data"]
    assert "reasoning_content restored for 1 turn" in rows[0]["rewrites"]
    assert "model: nvidia/kimi-k2-thinking → kimi-k2-thinking" in rows[0]["rewrites"]


def test_continue_agent_with_the_root_api_base(setup: Setup) -> None:
    """Continue users who write apiBase without /v1 (and with the trailing slash)."""
    code, result, stderr = run_agent(setup.server.root_url + "/", "deepseek/reasoner")
    assert code == 0, stderr
    assert result["turns"][1]["content"] == ANSWER_PREFIX + result["tool_result"]
    assert setup.upstream.requests[-1]["messages"][2]["reasoning_content"] == "".join(
        thoughts("deepseek", 1)
    )
