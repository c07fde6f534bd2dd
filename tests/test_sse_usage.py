from __future__ import annotations

import json

from trayproxy.core.usage import StreamWatcher, Usage, usage_from_body

STREAM = (
    b": ping\n\n"
    b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\r\n\r\n'
    b"data: [DONE]\n\n"
)


def test_watcher_reads_usage_and_done() -> None:
    w = StreamWatcher()
    for i in range(0, len(STREAM), 10):
        w.feed(STREAM[i : i + 10])
    assert w.usage == Usage(5, 2)
    assert w.done


def test_watcher_reads_in_stream_error() -> None:
    w = StreamWatcher()
    w.feed(b'data: {"error": {"message": "quota exceeded"}}\n\n')
    assert w.error == "quota exceeded"


def test_usage_from_json_bodies() -> None:
    chat = {"usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    assert usage_from_body(json.dumps(chat).encode()) == Usage(3, 4)
    embeddings = {"usage": {"prompt_tokens": 9, "total_tokens": 9}}
    assert usage_from_body(json.dumps(embeddings).encode()) == Usage(9, None)
    responses = {"response": {"usage": {"input_tokens": 1, "output_tokens": 2}}}
    assert usage_from_body(json.dumps(responses).encode()) == Usage(1, 2)
    assert usage_from_body(
        json.dumps({"usage": {"input_tokens": 1, "output_tokens": 2}}).encode()
    ) == Usage(1, 2)
    assert usage_from_body(b'not json but has "usage"') is None


def _watched(*chunks: bytes) -> StreamWatcher:
    watcher = StreamWatcher()
    for chunk in chunks:
        watcher.feed(chunk)
    return watcher


CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
LAST = b'data: {"choices":[{"index":0,"delta":{},"finish_reason": "stop"}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'


def test_a_stream_is_finished_by_done_finish_reason_or_its_last_responses_event() -> None:
    assert _watched(CHUNK * 3, b"data: [DONE]\n\n").finished
    assert _watched(CHUNK * 3, LAST).finished  # no [DONE], but the choice finished
    assert _watched(CHUNK * 3, LAST, USAGE).finished  # usage after the finish, no [DONE]
    assert _watched(CHUNK, LAST[:30], LAST[30:]).finished  # the last event split in two
    assert _watched(CHUNK, LAST.rstrip(b"\n")).finished  # the last blank line missing
    responses = (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta"}\n\n'
        b'event: response.completed\ndata: {"type":"response.completed","response":{}}\n\n'
    )
    assert _watched(responses).finished
    assert _watched(b'data: {"error":{"message":"overloaded"}}\n\n').finished
    assert _watched(CHUNK, b"data: [DONE]").finished  # the last blank line missing


def test_a_providers_own_error_event_is_its_error_not_a_truncation() -> None:
    responses = _watched(b'event: error\ndata: {"type":"error","code":"x","message":"boom"}\n\n')
    mistral = _watched(CHUNK, b'data: {"object":"error","message":"Service unavailable"}\n\n')
    assert (responses.error, responses.finished) == ("boom", True)
    assert (mistral.error, mistral.finished) == ("Service unavailable", True)


def test_a_stream_cut_short_is_not_finished() -> None:
    assert not _watched(CHUNK * 3).finished
    assert not _watched(CHUNK * 3, USAGE).finished  # usage alone does not end a stream
    assert not _watched(b": ping\n\n").finished
    assert not _watched(b'event: response.output_text.delta\ndata: {"type":"x"}\n\n').finished


def test_watcher_reads_anthropic_usage_from_the_start_and_the_end() -> None:
    """Anthropic streams the input tokens in message_start and the output in message_delta."""
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 50, "output_tokens": 1}, "content": []},
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 12},
    }
    w = StreamWatcher()
    for kind, data in (("message_start", start), ("message_delta", delta)):
        w.feed(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
    assert w.usage == Usage(50, 12)
    assert w.finished  # its stop_reason
