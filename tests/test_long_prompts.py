"""Prompts too long for a model's window (``max_context_size``): refused at once in each
protocol's own words, or sent to the mapping's ``long_context`` model — never sent to a
provider that would fail slowly. Checked with the real ``openai`` and ``anthropic`` SDKs, and
with the real Claude Code and Codex CLIs, against the strict keyed fake on 127.0.0.1.

What the CLIs do with the refusal (Claude Code 2.1.197, Codex 0.171.0, as pinned):

- Claude Code reads "prompt is too long: N tokens > M maximum". In a conversation of one
  exchange it prints "Prompt is too long · the request is ~N tokens (limit M) ... A
  single-exchange conversation cannot be compacted" and exits 1. In a longer one it compacts
  on its own: a summarization request (with part of the conversation) reaches the provider,
  then the question again on a summary, and the user gets the answer. When only its
  max_tokens (32000) does not fit, Anthropic's words "input length and `max_tokens` exceed
  context limit: P + M > W" make it retry with less, and trayproxy says them then.
- Codex reads ``context_length_exceeded`` as "Codex ran out of room in the model's context
  window" and exits 1: it does not compact on that error. It compacts before asking when the
  usage the provider reported nears the window that ``trayproxy codex`` put in its profile.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests import anthropic_grammar, responses_grammar
from tests.codex_cli import exec_command
from tests.conftest import settled
from tests.keyed_upstream import CHAT_PATH, KeyedUpstream, Usage
from tests.sdk_clients import anthropic_client, openai_client
from tests.test_claude_code_cli import CLAUDE
from tests.test_codex_cli import CODEX, setup_codex
from trayproxy.clients import claude_code
from trayproxy.clients.codex_config import profile_name
from trayproxy.config.parse import parse
from trayproxy.server.proxy_server import ProxyServer

KEY = "sk-long-prompts-0123456789"
# English prose, about 4.7 characters a token: LONG is ~3000 tokens, MID ~1500
PARAGRAPH = (
    "The river runs past the old mill, where the miller kept his accounts in a ledger bound "
    "with leather. Each morning he wrote down the weight of the grain, the price he paid, and "
    "the name of the farmer who brought it. In the evening he added the columns twice, because "
    "a mistake in the ledger meant a quarrel at the market on Saturday. "
)


def prose(chars: int) -> str:
    return (PARAGRAPH * (chars // len(PARAGRAPH) + 1))[:chars]


LONG = prose(14_000)
MID = prose(7_000)
SHORT = "Say hello."

# Claude Code's own parser of the error (its function that reads the numbers, 2.1.197)
CLAUDE_CODE_PTL = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.I)
TOO_LONG = re.compile(
    r"too long: prompt ~(\d+) tokens \+ max_tokens (\d+) > max_context_size (\d+) of (\S+)"
    r"(?: \(and (\d+) of long_context (\S+)\))?: refused before sending"
)
LONG_CONTEXT = re.compile(
    r"long context: prompt ~(\d+) tokens \+ max_tokens (\d+) > max_context_size (\d+) of "
    r"(\S+): sent to (\S+)"
)

MODELS = """
[models."small/model"]
provider = "keyed"
model = "small-upstream"
max_context_size = 2000

[models."small/clamped"]
provider = "keyed"
model = "small-upstream"
max_context_size = 2000
max_output_tokens = 200

[models."small/spill"]
provider = "keyed"
model = "small-upstream"
max_context_size = 2000
long_context = "big/model"

[models."big/model"]
provider = "keyed"
model = "big-upstream"
max_context_size = 100000

[models."small/spill-tiny"]
provider = "keyed"
model = "small-upstream"
max_context_size = 2000
long_context = "tiny/model"

[models."tiny/model"]
provider = "keyed"
model = "tiny-upstream"
max_context_size = 2500
"""


def config_text(fake: KeyedUpstream, models: str = MODELS) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = 0

[providers.keyed]
base_url = "{fake.base_url}"
api_key = "{KEY}"
{models}
"""


@pytest.fixture
def fake() -> Iterator[KeyedUpstream]:
    with KeyedUpstream({KEY: "ok"}) as upstream:
        yield upstream


@pytest.fixture
def server(fake: KeyedUpstream, started) -> ProxyServer:
    return started(parse(config_text(fake), file="long.toml"))


oai, claude = openai_client, anthropic_client


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def last_record(server: ProxyServer) -> dict[str, Any]:
    settled(server.logbook)
    return server.logbook.recent(1)[0].to_dict()


def refused(server: ProxyServer, fake: KeyedUpstream, window: int = 2000) -> re.Match[str]:
    """The last request was refused before sending: nothing reached the provider, and the
    record says why; the match of its "too long" rewrite."""
    assert fake.requests == [], [r.model for r in fake.requests]
    rec = last_record(server)
    assert rec["status"] == 400, rec
    assert rec["provider"] is None and rec["upstream_url"] is None, rec
    assert str(window) in rec["error"]  # the message the client got
    found = [m for r in rec["rewrites"] if (m := TOO_LONG.fullmatch(r))]
    assert len(found) == 1, rec["rewrites"]
    match = found[0]
    last_window = int(match.group(5) or match.group(3))
    assert last_window == window
    return match


def needed(match: re.Match[str]) -> int:
    """Prompt plus reserved output, as the record gives them."""
    return int(match.group(1)) + int(match.group(2))


# ---------------------------------------------------------------- refused in three protocols


@pytest.mark.parametrize("stream", [False, True])
def test_chat_prompt_over_the_window_is_refused_before_sending(
    server: ProxyServer, fake: KeyedUpstream, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai(server).chat.completions.create(model="small/model", messages=user(LONG), stream=stream)
    err = caught.value
    assert err.status_code == 400
    assert err.code == "context_length_exceeded"
    assert err.type == "invalid_request_error"
    assert "This model's maximum context length is 2000 tokens." in err.message
    match = refused(server, fake)
    assert 2500 < int(match.group(1)) < 3600  # ~3000 tokens of prose, estimated
    assert match.group(2) == "0" and match.group(4) == "small/model"
    assert f"However, you requested {needed(match)} tokens" in err.message


@pytest.mark.parametrize("stream", [False, True])
def test_messages_prompt_over_the_window_is_refused_in_anthropics_words(
    server: ProxyServer, fake: KeyedUpstream, stream: bool
) -> None:
    client = claude(server)
    with pytest.raises(anthropic.BadRequestError) as caught:
        if stream:
            with client.messages.stream(
                model="small/model", max_tokens=100, messages=user(LONG)
            ) as events:
                events.get_final_message()
        else:
            client.messages.create(model="small/model", max_tokens=100, messages=user(LONG))
    err = caught.value
    assert err.status_code == 400
    body = err.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    message = body["error"]["message"]
    match = refused(server, fake)
    assert match.group(2) == "100"
    # Anthropic's N is the prompt alone (Claude Code compacts by N minus the limit)
    assert message.startswith(f"prompt is too long: {match.group(1)} tokens > 2000 maximum")
    parsed = CLAUDE_CODE_PTL.search(message)  # what Claude Code reads from it
    assert parsed is not None and int(parsed.group(1)) > 2000 and parsed.group(2) == "2000"


@pytest.mark.parametrize("stream", [False, True])
def test_responses_prompt_over_the_window_is_refused_with_openais_code(
    server: ProxyServer, fake: KeyedUpstream, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai(server).responses.create(model="small/model", input=LONG, stream=stream)
    err = caught.value
    assert err.status_code == 400
    assert err.code == "context_length_exceeded"
    assert "maximum context length is 2000 tokens" in err.message
    match = refused(server, fake)
    assert 2500 < int(match.group(1)) < 3600


def test_a_prompt_that_fits_is_sent_as_usual(server: ProxyServer, fake: KeyedUpstream) -> None:
    answer = oai(server).chat.completions.create(
        model="small/model", messages=user(SHORT), max_tokens=500
    )
    assert answer.choices[0].message.content == "hello from small-upstream"
    assert fake.last.body["max_tokens"] == 500
    assert not any("too long" in r for r in last_record(server)["rewrites"])


# ---------------------------------------------------------------- the answer's room counts


def test_a_prompt_that_fits_but_not_with_its_max_tokens_is_refused(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai(server).chat.completions.create(
            model="small/model", messages=user(MID), max_tokens=1000
        )
    assert caught.value.code == "context_length_exceeded"
    match = refused(server, fake)
    prompt = int(match.group(1))
    assert 1000 < prompt < 2000 and match.group(2) == "1000"  # the prompt alone fits
    assert f"({prompt} in the messages, 1000 in the completion)" in caught.value.message


def test_max_output_tokens_clamps_what_is_reserved_so_it_fits(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    answer = oai(server).chat.completions.create(
        model="small/clamped", messages=user(MID), max_tokens=1000
    )
    assert answer.choices[0].message.content == "hello from small-upstream"
    sent = fake.last.body
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 200
    rec = last_record(server)
    assert rec["status"] == 200
    assert not any("too long" in r or "long context" in r for r in rec["rewrites"])


def test_max_tokens_counts_on_messages_too(server: ProxyServer, fake: KeyedUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError):
        claude(server).messages.create(model="small/model", max_tokens=1000, messages=user(MID))
    assert refused(server, fake).group(2) == "1000"
    answer = claude(server).messages.create(
        model="small/clamped", max_tokens=1000, messages=user(MID)
    )
    assert answer.content[0].text == "hello from small-upstream"
    assert fake.count(path=CHAT_PATH, status=200) == 1


def test_messages_over_only_with_max_tokens_uses_anthropics_max_tokens_words(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude(server).messages.create(model="small/model", max_tokens=1000, messages=user(MID))
    message = caught.value.body["error"]["message"]
    prompt = int(refused(server, fake).group(1))
    assert message.startswith(
        f"input length and `max_tokens` exceed context limit: {prompt} + 1000 > 2000"
    )


# ---------------------------------------------------------------- long_context


def chat_answer(server: ProxyServer, model: str, stream: bool) -> str:
    client = oai(server)
    if not stream:
        done = client.chat.completions.create(model=model, messages=user(LONG))
        return done.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=user(LONG), stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def messages_answer(server: ProxyServer, model: str, stream: bool) -> str:
    client = claude(server)
    if not stream:
        done = client.messages.create(model=model, max_tokens=100, messages=user(LONG))
        return "".join(b.text for b in done.content if b.type == "text")
    with client.messages.with_streaming_response.create(
        model=model, max_tokens=100, messages=user(LONG), stream=True
    ) as resp:
        assert resp.http_response.status_code == 200
        raw = b"".join(resp.iter_bytes())
    message = anthropic_grammar.validate(anthropic_grammar.parse_sse(raw))
    assert "error" not in message, message
    return "".join(b["text"] for b in message["content"] if b["type"] == "text")


def responses_answer(server: ProxyServer, model: str, stream: bool) -> str:
    client = oai(server)
    if not stream:
        return client.responses.create(model=model, input=LONG).output_text
    with client.responses.with_streaming_response.create(
        model=model, input=LONG, stream=True
    ) as resp:
        assert resp.http_response.status_code == 200
        raw = b"".join(resp.iter_bytes())
    response = responses_grammar.validate(responses_grammar.parse_sse(raw))
    assert response["status"] == "completed", response
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


ANSWER = {"chat": chat_answer, "messages": messages_answer, "responses": responses_answer}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("protocol", sorted(ANSWER))
def test_an_over_long_prompt_goes_to_the_long_context_model(
    server: ProxyServer, fake: KeyedUpstream, protocol: str, stream: bool
) -> None:
    assert ANSWER[protocol](server, "small/spill", stream) == "hello from big-upstream"
    assert [r.model for r in fake.requests] == ["big-upstream"]
    rec = last_record(server)
    assert rec["status"] == 200 and rec["upstream_model"] == "big-upstream"
    found = [m for r in rec["rewrites"] if (m := LONG_CONTEXT.fullmatch(r))]
    assert len(found) == 1, rec["rewrites"]
    prompt, output, window, mapping, target = found[0].groups()
    assert 2500 < int(prompt) < 3600
    assert output == ("100" if protocol == "messages" else "0")
    assert (window, mapping, target) == ("2000", "small/spill", "big/model")


def test_a_prompt_that_fits_stays_on_its_own_model(
    server: ProxyServer, fake: KeyedUpstream
) -> None:
    answer = oai(server).chat.completions.create(model="small/spill", messages=user(SHORT))
    assert answer.choices[0].message.content == "hello from small-upstream"
    assert not any("long context" in r for r in last_record(server)["rewrites"])


@pytest.mark.parametrize("protocol", ["chat", "messages"])
def test_a_long_context_model_too_small_as_well_is_a_400(
    server: ProxyServer, fake: KeyedUpstream, protocol: str
) -> None:
    if protocol == "chat":
        with pytest.raises(openai.BadRequestError) as caught:
            oai(server).chat.completions.create(model="small/spill-tiny", messages=user(LONG))
        assert caught.value.code == "context_length_exceeded"
        assert "maximum context length is 2500 tokens" in caught.value.message
    else:
        with pytest.raises(anthropic.BadRequestError) as caught:
            claude(server).messages.create(
                model="small/spill-tiny", max_tokens=100, messages=user(LONG)
            )
        assert caught.value.body["error"]["message"].startswith("prompt is too long: ")
        assert "tokens > 2500 maximum" in caught.value.body["error"]["message"]
    match = refused(server, fake, window=2500)
    assert match.group(4) == "small/spill-tiny" and match.group(6) == "tiny/model"


# ---------------------------------------------------------------- Claude Code

CLI_TIMEOUT = 60  # each run below takes about a second


def claude_code_env(server: ProxyServer, home: Path, model: str, retries: int = 0) -> dict:
    env = claude_code.environment(server.config, server.root_url)  # what the user pastes
    return env | {
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "CLAUDE_CODE_MAX_RETRIES": str(retries),
    }


def run_claude(
    env: dict, work: Path, prompt: str, *, resume: bool = False
) -> tuple[int, dict[str, Any]]:
    args = [str(CLAUDE), "-p", prompt, "--output-format", "json"]
    if resume:
        args.insert(1, "--continue")
    done = subprocess.run(
        args,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"Claude Code printed no JSON: {done.stdout!r} {done.stderr!r}")


@pytest.fixture
def claude_cli(tmp_path: Path) -> tuple[Path, Path]:
    if not CLAUDE.exists():
        pytest.fail(f"Claude Code is not installed in {CLAUDE.parent.parent}: npm ci there.")
    (tmp_path / "work").mkdir()
    return tmp_path / "home", tmp_path / "work"


def window_config(fake: KeyedUpstream, window: int, output: int | None = None) -> str:
    extra = f"max_output_tokens = {output}\n" if output else ""
    models = (
        f'[models."small/model"]\nprovider = "keyed"\nmodel = "small-upstream"\n'
        f"max_context_size = {window}\n{extra}"
    )
    return config_text(fake, models)


@pytest.mark.timeout(CLI_TIMEOUT)
def test_claude_code_says_a_single_question_is_too_long(
    fake: KeyedUpstream, started, claude_cli: tuple[Path, Path]
) -> None:
    """Claude Code's own prompt is ~19 000 tokens: a 2000-token window refuses its first
    request, and Claude Code tells why, with the numbers it read."""
    server = started(parse(window_config(fake, 2000)))
    home, work = claude_cli
    code, result = run_claude(claude_code_env(server, home, "small/model"), work, SHORT)
    assert code == 1 and result["is_error"] is True, result
    assert result["api_error_status"] == 400
    assert result["terminal_reason"] == "prompt_too_long"
    assert result["result"].startswith("Prompt is too long · the request is ~")
    assert "(limit 2000)" in result["result"]
    assert "cannot be compacted" in result["result"]
    assert fake.requests == []


COMPACT_WINDOW = 31_000  # Claude Code's prompt (~19 000) + 2000 reserved + 3 parts of ~4000
PART = prose(19_000)  # ~4000 tokens


@pytest.mark.timeout(CLI_TIMEOUT)
def test_claude_code_compacts_a_conversation_that_outgrew_the_window(
    fake: KeyedUpstream, started, claude_cli: tuple[Path, Path]
) -> None:
    server = started(parse(window_config(fake, COMPACT_WINDOW, output=2000)))
    home, work = claude_cli
    env = claude_code_env(server, home, "small/model")
    for n in range(2):  # two questions that fit
        code, result = run_claude(env, work, f"Part {n}: {PART}", resume=n > 0)
        assert code == 0 and result["result"] == "hello from small-upstream", result
    assert fake.count(status=200) == 2
    fake.clear()

    code, result = run_claude(env, work, f"Part 2: {PART}", resume=True)

    # the user sees an answer, not the error
    assert code == 0 and result["is_error"] is False, result
    assert result["result"] == "hello from small-upstream"
    refusals = [r.to_dict() for r in server.logbook.recent(20) if r.status == 400]
    assert refusals and all(any(TOO_LONG.fullmatch(w) for w in r["rewrites"]) for r in refusals), (
        refusals
    )
    bodies = [r.body for r in fake.served()]
    summarizing = [b for b in bodies if "<summary>" in json.dumps(b["messages"][-1])]
    assert summarizing, "no summarization request reached the provider"
    final = json.dumps(bodies[-1]["messages"])
    assert "continued from a previous conversation" in final  # the summary replaced...
    assert "Part 0:" not in final  # ... the oldest part
    assert "Part 2:" in final


@pytest.mark.timeout(CLI_TIMEOUT)
def test_claude_code_lowers_its_max_tokens_when_only_they_do_not_fit(
    fake: KeyedUpstream, started, claude_cli: tuple[Path, Path]
) -> None:
    """Claude Code asks max_tokens 32000: with a 40000-token window its ~19 000-token prompt
    fits, but not with that reserve."""
    server = started(parse(window_config(fake, 40_000)))
    home, work = claude_cli
    env = claude_code_env(server, home, "small/model", retries=2)
    code, result = run_claude(env, work, SHORT)
    assert code == 0 and result["result"] == "hello from small-upstream", result
    assert fake.last.body["max_tokens"] < 32_000


# ---------------------------------------------------------------- Codex


@pytest.fixture
def codex_cli(tmp_path: Path) -> tuple[Path, Path]:
    if not CODEX.exists():
        pytest.fail(f"Codex is not installed in {CODEX.parent.parent}: npm ci there.")
    (tmp_path / "work").mkdir()
    return tmp_path / "home", tmp_path / "work"


def codex_server(started, fake: KeyedUpstream, tmp_path: Path, window: int) -> ProxyServer:
    text = window_config(fake, window)
    config_file = tmp_path / "config.toml"
    config_file.write_text(text)
    server = started(parse(text, file=str(config_file)))
    setup_codex(server, tmp_path / "home", config_file)  # `trayproxy codex --merge`
    return server


def run_codex(home: Path, work: Path, prompt: str, *, resume: bool = False):
    args = exec_command(work, "--profile", profile_name("small/model"), ephemeral=False)
    if resume:
        args += ["resume", "--last"]
    return subprocess.run(
        [*args, prompt],
        cwd=work,
        env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


@pytest.mark.timeout(CLI_TIMEOUT)
def test_codex_says_it_ran_out_of_room(
    fake: KeyedUpstream, started, tmp_path: Path, codex_cli: tuple[Path, Path]
) -> None:
    """Codex's own prompt is ~9000 tokens: over a 2000-token window. It does not compact on
    the error; it tells the user."""
    codex_server(started, fake, tmp_path, 2000)
    done = run_codex(*codex_cli, SHORT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Codex ran out of room in the model's context window" in done.stderr
    assert "hello from" not in done.stdout
    assert fake.requests == []


@pytest.mark.timeout(CLI_TIMEOUT)
def test_codex_compacts_before_the_window_when_usage_nears_it(
    fake: KeyedUpstream, started, tmp_path: Path, codex_cli: tuple[Path, Path]
) -> None:
    """``trayproxy codex`` gives the profile the mapping's window: when the provider reports
    a usage near it, Codex's next turn compacts first."""
    codex_server(started, fake, tmp_path, 20_000)
    fake.usage = Usage(prompt_tokens=19_000, completion_tokens=200, cached_tokens=0)
    first = run_codex(*codex_cli, SHORT)
    assert first.returncode == 0 and "hello from small-upstream" in first.stdout, first.stderr
    second = run_codex(*codex_cli, "And again.", resume=True)
    assert second.returncode == 0, second.stderr
    assert "context compacted" in second.stderr
    assert "hello from small-upstream" in second.stdout
    asked = [json.dumps(r.body["messages"][-1]) for r in fake.served()]
    assert any("CONTEXT CHECKPOINT COMPACTION" in a for a in asked), asked
