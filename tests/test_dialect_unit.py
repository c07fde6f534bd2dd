"""dialect.py on its own: the rewriter at every chunk boundary, the memory's bounds, ids."""

from __future__ import annotations

import json

import pytest

from trayproxy.config.model import ConfigError
from trayproxy.config.parse import parse
from trayproxy.providers import dialect, stream_rewrite
from trayproxy.providers.reasoning import ReasoningMemory
from trayproxy.routing.resolve import Route, resolve


def prepare(route: Route, endpoint: str, body: dict, memory: ReasoningMemory | None):
    """``dialect.prepare`` for a route, as the gateway calls it."""
    return dialect.prepare(
        route.provider.profile, endpoint, body, memory, max_output_tokens=route.max_output_tokens
    )


def route_for(profile: str, extra: str = "", max_output: int | None = None):
    cap = f"max_output_tokens = {max_output}" if max_output else ""
    config = parse(
        f"""
[providers.p]
base_url = "http://127.0.0.1:9/v1"
profile = "{profile}"
{extra}
[models."m"]
provider = "p"
model = "up"
{cap}
""",
        file="unit.toml",
    )
    return resolve(config, "m")


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


STREAM = (
    event(chunk({"role": "assistant", "content": ""}))
    + b": keep-alive\n\n"
    + event(chunk({"reasoning": "think"}))
    + event(chunk({"reasoning": " more", "content": "Hi"}))
    + event(chunk({"content": " there"}))
    + event({"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)


def rewrite(data: bytes, pieces: list[bytes], strip_usage: bool) -> tuple[bytes, dialect.Exchange]:
    _, ex = prepare(route_for("openai"), "chat/completions", {"messages": []}, None)
    ex.strip_usage = strip_usage
    rw = stream_rewrite.for_exchange(ex)
    assert rw is not None
    return b"".join(rw.feed(p) for p in pieces) + rw.finish(), ex


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_rewriter_gives_the_same_answer_at_any_chunk_boundary(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    out, ex = rewrite(STREAM, pieces, strip_usage=True)
    whole, _ = rewrite(STREAM, [STREAM], strip_usage=True)
    assert out == whole
    events = [e for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    deltas = [json.loads(e[6:])["choices"][0]["delta"] for e in events]
    assert deltas == [
        {"role": "assistant", "content": ""},  # no reasoning here: left as it came
        {"reasoning_content": "think"},
        {"reasoning_content": " more"},  # split off, first
        {"content": "Hi"},
        {"content": " there"},
    ]
    assert b": keep-alive\n\n" in out and out.endswith(b"data: [DONE]\n\n")
    assert (ex.renamed, ex.split, ex.usage_removed) == (2, 1, 1)


def test_events_with_nothing_to_change_keep_their_bytes() -> None:
    plain = event(chunk({"content": "a"})).replace(b'":', b'" :') + event(chunk({"content": "b"}))
    out, ex = rewrite(plain, [plain], strip_usage=True)
    assert out == plain
    assert ex.answer_notes() == []


def test_prepare_never_changes_the_clients_body() -> None:
    body = {
        "model": "m",
        "max_completion_tokens": 99999,
        "stream": True,
        "store": True,
        "messages": [
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "f"}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"},
        ],
    }
    before = json.dumps(body, sort_keys=True)
    sent, ex = prepare(route_for("mistral", max_output=4096), "chat/completions", body, None)
    assert json.dumps(body, sort_keys=True) == before
    assert sent["max_tokens"] == 4096 and "max_completion_tokens" not in sent
    assert "store" not in sent and "stream_options" not in sent
    short = sent["messages"][0]["tool_calls"][0]["id"]
    assert sent["messages"][1]["tool_call_id"] == short == dialect.short_id("call_1")
    assert ex.id_back == {short: "call_1"}
    assert ex.notes == [
        "max_completion_tokens → max_tokens",
        "removed: store",
        "max_tokens 99999 → 4096 (the model's max_output_tokens)",
        "tool-call ids shortened to 9 characters (2)",
    ]


def test_short_ids_are_stable_and_valid() -> None:
    for value in ["call_PTLP8xhu3uwZk4l3nlnrrJha", "functions.read_file:0", "x", "é" * 40]:
        short = dialect.short_id(value)
        assert len(short) == 9 and short.isascii() and short.isalnum()
        assert dialect.short_id(value) == short
    assert dialect.short_id("D681PevKs") == "D681PevKs"
    assert dialect.short_id("call_a") != dialect.short_id("call_b")


def test_reasoning_memory_is_bounded() -> None:
    memory = ReasoningMemory(max_entries=3, max_chars=100)
    for i in range(5):
        memory.put([f"id{i}"], "r" * 10)
    assert len(memory) == 3 and memory.get("id0") is None and memory.get("id4") == "r" * 10
    memory.put(["big1"], "b" * 60)
    memory.put(["big2"], "b" * 60)
    assert memory.get("big1") is None and memory.get("big2") is not None
    assert memory.put(["huge"], "h" * 101) == 0 and memory.get("huge") is None


def test_overrides_and_errors_in_config() -> None:
    route = route_for(
        "groq",
        'drop_params = ["seed"]\ninclude_usage = false\n'
        'rename_params = { max_tokens = "max_completion_tokens" }\n'
        'restore_reasoning = "reasoning"',
    )
    profile = route.provider.profile
    assert profile.name == "groq" and profile.drop_params == ("seed",)
    assert profile.include_usage is False and profile.restore_reasoning == "reasoning"
    assert profile.rename_params == (("max_tokens", "max_completion_tokens"),)
    with pytest.raises(ConfigError) as err:
        route_for("grok")
    assert str(err.value).startswith("unit.toml:4: providers.p.profile: unknown profile 'grok'")
    assert "did you mean 'groq'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        route_for("groq", 'restore_reasoning = "yes"')
    assert "providers.p.restore_reasoning: must be one of" in str(err.value)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://integrate.api.nvidia.com/v1", "nvidia"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("https://api.siliconflow.cn/v1", "siliconflow"),
        ("https://api.deepseek.com/v1", "deepseek"),
        ("https://api.moonshot.ai/v1", "moonshot"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("http://127.0.0.1:11434/v1", "ollama"),
        ("http://localhost:8080/v1", "openai"),
        ("https://evil-api.groq.com.example.org/v1", "openai"),
    ],
)
def test_profile_inferred_from_the_base_url(url: str, name: str) -> None:
    from trayproxy.providers.profiles import infer

    assert infer(url) == name


def test_usage_is_not_asked_for_where_stream_options_is_refused() -> None:
    route = route_for("groq", 'drop_params = ["stream_options"]')
    sent, ex = prepare(route, "chat/completions", {"stream": True, "messages": []}, None)
    assert "stream_options" not in sent and not ex.strip_usage
    assert not any("usage" in note for note in ex.notes)


def test_null_reasoning_fields_are_left_as_they_came() -> None:
    data = event(chunk({"content": "a", "reasoning": None}))
    out, ex = rewrite(data, [data], strip_usage=False)
    assert out == data and ex.renamed == 0


def test_repeated_tool_call_ids_get_their_own_reasoning_back() -> None:
    """Kimi numbers tool calls per turn: the id alone does not tell two turns apart."""
    memory = ReasoningMemory()
    route = route_for("nvidia")

    def answer(thinking: str, path: str) -> dict:
        _, ex = prepare(route, "chat/completions", {"messages": []}, memory)
        rw = stream_rewrite.for_exchange(ex)
        assert rw is not None
        call = {"index": 0, "id": "functions.read_file:0", "type": "function"}
        stream = (
            event(chunk({"reasoning_content": thinking}))
            + event(chunk({"tool_calls": [{**call, "function": {"name": "read_file"}}]}))
            + event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": path}}]}))
            + b"data: [DONE]\n\n"
        )
        rw.feed(stream)
        rw.finish()
        assert ex.remembered == 1
        return {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "functions.read_file:0",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": path},
                }
            ],
        }

    first = answer("about a", '{"path":"a"}')
    second = answer("about b", '{"path":"b"}')
    history = [first, {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "A"}]
    history += [second, {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "B"}]
    sent, ex = prepare(route, "chat/completions", {"messages": history}, memory)
    assert [m.get("reasoning_content") for m in sent["messages"][::2]] == ["about a", "about b"]
    assert "reasoning_content restored for 2 turns" in ex.notes
