"""Token counts for every request: asked of providers in streams, estimated (and marked so)
where a provider reports none, in the record, the history, ``trayproxy usage`` and ``logs``."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from tests.conftest import MESSAGES, record
from tests.fake_upstream import WORDS
from trayproxy.core.estimate import IMAGE_TOKENS, answer_tokens, request_tokens, text_tokens
from trayproxy.core.usage import StreamWatcher
from trayproxy.records import terminal
from trayproxy.records.history import History
from trayproxy.records.logbook import RecordDraft

PROSE = (
    "A developer double-clicks it on a laptop; an icon appears; an embedded proxy serves "
    "requests. Coding assistants send model ids, and a file maps each id to a provider. "
)
CHINESE = "本地大语言模型网关运行在系统托盘中。开发者双击即可启动，图标出现后，嵌入式代理提供服务。"


def test_text_estimates_are_near_what_tokenizers_count() -> None:
    # cl100k and o200k count 37 and 37 tokens for PROSE, 47 and 35 for CHINESE (gpt-tokenizer)
    assert 32 <= text_tokens(PROSE) <= 42
    assert 32 <= text_tokens(CHINESE) <= 50
    assert text_tokens("") == 0
    long = PROSE * 5000  # priced by its first part, scaled: same density
    assert abs(text_tokens(long) / (5000 * text_tokens(PROSE)) - 1) < 0.05


def test_a_prompt_counts_messages_tools_and_images_not_their_bytes() -> None:
    image = "data:image/png;base64," + "A" * 400_000
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": PROSE},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": PROSE},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {}}}],
    }
    n = request_tokens(body)
    bare = 2 * text_tokens(PROSE)
    assert bare + IMAGE_TOKENS < n < bare + IMAGE_TOKENS + 40  # message and tool overheads
    assert request_tokens({"model": "m", "input": ["one two", "three"]}) == 3  # embeddings


def test_a_whole_answer_counts_text_reasoning_and_tool_arguments() -> None:
    answer = {
        "choices": [
            {
                "message": {
                    "content": PROSE,
                    "reasoning_content": PROSE,
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}],
                }
            }
        ],
        "usage": None,
    }
    assert 2 * text_tokens(PROSE) < answer_tokens(answer) <= 2 * text_tokens(PROSE) + 10


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_a_stream_estimate_scales_its_first_events_to_the_whole_stream() -> None:
    words = PROSE.split(" ")
    watcher = StreamWatcher()
    watcher.feed(_sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))
    written = []
    for i in range(3000):  # well past the 64 KiB the estimate reads
        piece = " " + words[i % len(words)]
        written.append(piece)
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        watcher.feed(_sse({**chunk, "choices": [{"index": 0, "delta": {"content": piece}}]}))
    watcher.feed(b"data: [DONE]\n\n")
    exact = text_tokens("".join(written))
    assert watcher.usage is None
    assert abs(watcher.estimated_output_tokens() / exact - 1) < 0.05


@pytest.fixture
def server(serve):
    return serve()


def test_the_default_profile_asks_a_stream_for_usage_the_client_did_not(server, upstream) -> None:
    """A provider without a built-in profile (an unknown host) is asked for the stream's
    usage; the client, which did not ask, does not get the extra chunk; the counts are real."""
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(model="fake/anything", messages=MESSAGES, stream=True)
    )
    assert upstream.last.body["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    r = record(server)
    assert (r["prompt_tokens"], r["completion_tokens"], r["tokens_estimated"]) == (11, 6, False)
    assert "usage requested upstream (stream_options.include_usage)" in r["rewrites"]


@pytest.mark.parametrize("stream", [True, False])
def test_a_provider_that_counts_nothing_gets_an_estimate_marked_so(server, stream: bool) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": PROSE}]
    if stream:
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="fake/no-usage", messages=messages, stream=True
            )
            if c.choices
        )
    else:
        answer = client.chat.completions.create(model="fake/no-usage", messages=messages)
        assert answer.usage is None  # the client's answer is the provider's: not made up
        text = answer.choices[0].message.content
    assert text == "".join(WORDS)
    r = record(server)
    assert r["tokens_estimated"] is True
    # the text, its role, the message around it, the reply's start
    assert r["prompt_tokens"] == text_tokens(PROSE) + 1 + 3 + 3
    assert 0.6 <= r["completion_tokens"] / text_tokens(text) <= 1.6
    line = server.logbook.recent(1)[0].log_line()
    assert f"tokens=~{r['prompt_tokens']}/{r['completion_tokens']}" in line


def _draft(estimated: bool, prompt: int, completion: int) -> RecordDraft:
    draft = RecordDraft("chat/completions", client_model="m", provider="p", status=200)
    draft.prompt_tokens, draft.completion_tokens = prompt, completion
    draft.tokens_estimated = estimated
    return draft


def test_usage_and_logs_mark_estimated_figures(tmp_path: Path, capsys) -> None:
    history = History(tmp_path / "h.db")
    history.start()
    history.add(_draft(False, 100, 20).finish(1))
    history.add(_draft(True, 1000, 200).finish(2))
    assert history.flush(5)
    history.stop()
    assert terminal.cmd_usage(tmp_path / "h.db", 1) == 0
    out = capsys.readouterr().out
    assert "~1,100" in out and "~220" in out
    assert "~ includes estimates" in out
    assert terminal.cmd_logs(tmp_path / "h.db", 5, False) == 0
    out = capsys.readouterr().out
    assert "~1000/200" in out and " 100/20" in out


def test_usage_without_estimates_has_no_marks(tmp_path: Path, capsys) -> None:
    history = History(tmp_path / "h.db")
    history.start()
    history.add(_draft(False, 100, 20).finish(1))
    assert history.flush(5)
    history.stop()
    terminal.cmd_usage(tmp_path / "h.db", 1)
    out = capsys.readouterr().out
    assert "~" not in out and "100" in out
