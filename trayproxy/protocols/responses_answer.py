"""A whole Chat Completions answer as a Responses API ``response`` object: reasoning as a
summary item, the text as a message item, each tool call as a ``function_call`` (or
``custom_tool_call`` for a freeform tool), usage with cached and reasoning tokens."""

from __future__ import annotations

import time
from typing import Any

from trayproxy.core.estimate import answer_tokens
from trayproxy.protocols.responses_stream import custom_input, new_id, usage


def from_chat(
    answer: dict[str, Any],
    *,
    model: str,
    custom_tools: frozenset[str] = frozenset(),
    estimated_input: int = 0,
) -> dict[str, Any]:
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        summary = [{"type": "summary_text", "text": reasoning}]
        output.append({"type": "reasoning", "id": new_id("rs"), "summary": summary})
    text = message.get("content")
    if isinstance(text, str) and text:
        part = {"type": "output_text", "text": text, "annotations": []}
        output.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        name = function.get("name") or ""
        arguments = function.get("arguments") if isinstance(function.get("arguments"), str) else ""
        call_id = (
            call.get("id") if isinstance(call.get("id"), str) and call["id"] else new_id("call")
        )
        item: dict[str, Any] = {"id": new_id("fc"), "call_id": call_id, "name": name}
        if name in custom_tools:
            item |= {"type": "custom_tool_call", "input": custom_input(arguments)}
        else:
            item |= {"type": "function_call", "arguments": arguments}
        output.append({**item, "status": "completed"})
    incomplete = choice.get("finish_reason") == "length"
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "usage": usage(answer.get("usage"), estimated_input, answer_tokens(answer)),
    }
