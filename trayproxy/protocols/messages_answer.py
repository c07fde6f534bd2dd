"""A Chat Completions answer as an Anthropic message: reasoning as a ``thinking`` block, text,
tool calls as ``tool_use`` blocks (ids an Anthropic client accepts), the stop reason and the
usage (cached prompt tokens counted apart, as Anthropic does)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from trayproxy.protocols import tool_ids

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_id() -> str:
    return "msg_tp" + secrets.token_hex(12)


SIGNATURE_MARK = "tp1"  # how a signature trayproxy made starts


def signature(thinking: str) -> str:
    """A thinking block's signature: Anthropic's clients send it back and some refuse a
    block without one. Providers behind a translation do not check it."""
    digest = hashlib.sha256(thinking.encode("utf-8", "surrogatepass")).digest()
    return SIGNATURE_MARK + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def stop_reason(
    finish: Any, matched: Any, stop_sequences: list[str], has_tool_use: bool
) -> tuple[str, str | None]:
    """Anthropic's stop reason (and stop sequence) for a Chat ``finish_reason``. ``matched``
    is the stop string some servers (vLLM) report in ``stop_reason``."""
    if isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    if has_tool_use and finish in ("tool_calls", "function_call", "stop"):
        return "tool_use", None
    return STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn", None


def usage(chat_usage: Any, *, estimated_input: int = 0) -> dict[str, int]:
    """Anthropic's usage for a Chat ``usage``: ``input_tokens`` without the cached part,
    which is ``cache_read_input_tokens``."""
    if not isinstance(chat_usage, dict):
        return {"input_tokens": estimated_input, "output_tokens": 0}
    prompt = _int(chat_usage.get("prompt_tokens"), estimated_input)
    details = chat_usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens"), 0) if isinstance(details, dict) else 0
    cached = _int(chat_usage.get("prompt_cache_hit_tokens"), cached)  # DeepSeek's name
    out = {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _int(chat_usage.get("completion_tokens"), 0),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``input`` must be."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {"arguments": arguments}  # not JSON: kept, so that nothing is lost
    return value if isinstance(value, dict) else {"value": value}


def from_chat(
    answer: dict[str, Any], *, model: str, stop_sequences: list[str], estimated_input: int = 0
) -> dict[str, Any]:
    """The Anthropic message for a non-streamed Chat ``answer``."""
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append(
            {"type": "thinking", "thinking": reasoning, "signature": signature(reasoning)}
        )
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        content.append(
            {
                "type": "tool_use",
                "id": tool_ids.for_client(call.get("id")),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    has_tools = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences, has_tools
    )
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(answer.get("usage"), estimated_input=estimated_input),
    }
