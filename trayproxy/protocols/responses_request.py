"""A Responses API request (Codex, the OpenAI Agents SDK) as a Chat Completions request, for
providers that speak only Chat Completions. Stateless, as Codex uses it (``store: false``):
the whole conversation comes in ``input``.

- ``instructions`` and the leading ``developer`` / ``system`` messages become the system
  message; later ones become user text (many chat templates take a system message only
  first).
- ``message`` items: ``input_text`` / ``output_text`` parts as text, ``input_image`` as an
  image part; ``function_call`` and ``custom_tool_call`` items become the assistant turn's
  ``tool_calls``; their ``*_output`` items become ``tool`` messages; ``reasoning`` items become
  the next assistant turn's ``reasoning_content`` (Kimi and DeepSeek need it back).
- function tools pass; a ``custom`` tool (Codex's freeform ``apply_patch``) is offered as a
  function with one string argument, ``input``; ``namespace`` groups are flattened; hosted tools
  (``web_search``, ``file_search``...) that only OpenAI runs are dropped.
- ``reasoning.effort`` goes to the provider's reasoning parameter where its profile names one;
  ``text.format`` becomes ``response_format``; ``max_output_tokens`` ``max_tokens``.
- ``include``, ``prompt_cache_key``, ``store``, ``metadata`` and other OpenAI-only fields are
  dropped and listed in the notes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

RESPONSES = "responses"
CUSTOM_INPUT = "input"  # the one argument a custom (freeform) tool is offered with

_TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
    }
)
# hosted tools: OpenAI runs them, a Chat provider cannot
_FUNCTION_LIKE = ("function", "custom", "namespace")


class StatefulRequestError(ValueError):
    """``previous_response_id``: trayproxy keeps no conversations."""


@dataclass
class Translated:
    body: dict[str, Any]
    custom_tools: frozenset[str] = frozenset()  # offered as functions, answered as custom calls
    notes: list[str] = field(default_factory=list)


def to_chat(
    body: dict[str, Any], *, reasoning: str = "none", include_usage: bool = True
) -> Translated:
    """The Chat Completions body for a Responses ``body`` (which is not modified)."""
    if body.get("previous_response_id"):
        raise StatefulRequestError(
            "previous_response_id is not supported: trayproxy keeps no conversations. Send "
            "the whole conversation in input (with store: false, as Codex does)."
        )
    dropped: Counter[str] = Counter()
    system: list[str] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.append(instructions)
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    messages, moved = _messages(items if isinstance(items, list) else [], system, dropped)
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if isinstance(body.get("max_output_tokens"), int):
        out["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p"):
        if key in body and body[key] is not None:
            out[key] = body[key]
    if body.get("stream") is True:
        out["stream"] = True
        if include_usage:  # the last event needs the counts (a profile may say no)
            out["stream_options"] = {"include_usage": True}
    custom = _tools(body, out, dropped)
    _text_format(body, out, dropped)
    _reasoning(body, out, reasoning, dropped)
    for key in body:
        if key not in _TRANSLATED and body[key] is not None:
            dropped[key] += 1
    notes = ["Responses API → Chat Completions"]
    if moved:
        notes.append(f"developer messages in the conversation sent as user text ({moved})")
    if dropped:
        notes.append("dropped: " + ", ".join(_counted(dropped)))
    return Translated(out, frozenset(custom), notes)


def _counted(dropped: Counter[str]) -> list[str]:
    return [name if n == 1 else f"{name} ×{n}" for name, n in sorted(dropped.items())]


def _content(value: Any, dropped: Counter[str]) -> str | list[dict[str, Any]]:
    """A message's content: text alone as a string, else Chat content parts."""
    if isinstance(value, str):
        return value
    parts: list[dict[str, Any]] = []
    for part in value if isinstance(value, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            dropped[f"{kind} part"] += 1
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(p["text"] for p in content if p["type"] == "text")


def _messages(
    items: list[Any], system: list[str], dropped: Counter[str]
) -> tuple[list[dict[str, Any]], int]:
    out: list[dict[str, Any]] = []
    moved = 0
    reasoning: list[str] = []  # for the next assistant turn
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            content = _content(item.get("content"), dropped)
            if role in ("developer", "system"):
                if not out:
                    system.append(_text_of(content))
                else:
                    moved += 1
                    _append(out, {"role": "user", "content": _text_of(content)})
            elif role == "assistant":
                turn = _assistant(out, reasoning)
                text = _text_of(content)
                turn["content"] = (turn.get("content") or "") + text if text else turn["content"]
            else:
                _append(out, {"role": "user", "content": content})
        elif kind == "reasoning":
            reasoning += _reasoning_text(item)
        elif kind in ("function_call", "custom_tool_call"):
            turn = _assistant(out, reasoning)
            if kind == "function_call":
                arguments = item.get("arguments") if isinstance(item.get("arguments"), str) else ""
            else:
                arguments = json.dumps({CUSTOM_INPUT: item.get("input") or ""}, ensure_ascii=False)
            call = {"name": item.get("name") or "", "arguments": arguments}
            turn.setdefault("tool_calls", []).append(
                {"id": item.get("call_id") or "", "type": "function", "function": call}
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            images: list[dict[str, Any]] = []
            if not isinstance(output, str):
                content = _content(output, dropped)
                output = _text_of(content)
                if isinstance(content, list):
                    images = [p for p in content if p["type"] != "text"]
            call_id = item.get("call_id") or ""
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
            if images:  # a tool message carries text only: its images follow as the user's
                out.append({"role": "user", "content": images})
        else:
            dropped[f"{kind} item"] += 1
    return out, moved


def _reasoning_text(item: dict[str, Any]) -> list[str]:
    """A reasoning item's text: its full text where the client kept it, else its summary."""
    for key in ("content", "summary"):
        parts = item.get(key)
        texts = [
            p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        if texts:
            return ["\n\n".join(texts)]
    return []


def _assistant(out: list[dict[str, Any]], reasoning: list[str]) -> dict[str, Any]:
    """The assistant turn items add to: the last message when it is the assistant's and has
    no tool answers after it yet, else a new one (with the reasoning seen since)."""
    if out and out[-1]["role"] == "assistant" and not reasoning:
        return out[-1]
    turn: dict[str, Any] = {"role": "assistant", "content": None}
    if reasoning:
        turn["reasoning_content"] = "\n\n".join(reasoning)
        reasoning.clear()
    out.append(turn)
    return turn


def _append(out: list[dict[str, Any]], message: dict[str, Any]) -> None:
    """A user message, merged with a user message just before it (roles should alternate)."""
    last = out[-1] if out else None
    if last is not None and last["role"] == "user":
        a, b = last["content"], message["content"]
        if isinstance(a, str) and isinstance(b, str):
            last["content"] = f"{a}\n\n{b}" if a and b else a or b
            return
        parts_a = [{"type": "text", "text": a}] if isinstance(a, str) else list(a)
        parts_b = [{"type": "text", "text": b}] if isinstance(b, str) else list(b)
        last["content"] = parts_a + parts_b
        return
    out.append(message)


def _flatten(tools: list[Any]) -> list[dict[str, Any]]:
    flat = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            flat += _flatten(tool.get("tools") or [])
        elif isinstance(tool, dict):
            flat.append(tool)
    return flat


def _tools(body: dict[str, Any], out: dict[str, Any], dropped: Counter[str]) -> set[str]:
    functions = []
    custom: set[str] = set()
    for tool in _flatten(body.get("tools") or []):
        kind = tool.get("type")
        name = tool.get("name")
        if kind == "function" and isinstance(name, str):
            function = {"name": name, "parameters": tool.get("parameters") or {"type": "object"}}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            if tool.get("strict") is True:
                function["strict"] = True
            functions.append({"type": "function", "function": function})
        elif kind == "custom" and isinstance(name, str):
            custom.add(name)
            description = (
                tool.get("description") if isinstance(tool.get("description"), str) else ""
            )
            fmt = tool.get("format")
            if isinstance(fmt, dict) and isinstance(fmt.get("definition"), str):
                description += (
                    f"\n\nThe input follows this {fmt.get('syntax', 'grammar')} grammar:\n"
                    + fmt["definition"]
                )
            parameters = {
                "type": "object",
                "properties": {CUSTOM_INPUT: {"type": "string", "description": "the input"}},
                "required": [CUSTOM_INPUT],
            }
            function = {"name": name, "description": description.strip(), "parameters": parameters}
            functions.append({"type": "function", "function": function})
        else:
            dropped[f"hosted tool {kind}"] += 1
    if functions:
        out["tools"] = functions
        if isinstance(body.get("parallel_tool_calls"), bool):  # refused without tools
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    choice = body.get("tool_choice")
    if functions and choice in ("auto", "none", "required"):
        out["tool_choice"] = choice
    elif functions and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    return custom


def _text_format(body: dict[str, Any], out: dict[str, Any], dropped: Counter[str]) -> None:
    text = body.get("text")
    if not isinstance(text, dict):
        return
    fmt = text.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "answer", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    if "verbosity" in text:
        dropped["text.verbosity"] += 1


def _reasoning(
    body: dict[str, Any], out: dict[str, Any], style: str, dropped: Counter[str]
) -> None:
    settings = body.get("reasoning")
    effort = settings.get("effort") if isinstance(settings, dict) else None
    if effort not in ("minimal", "low", "medium", "high", "xhigh"):
        return
    plain = {"minimal": "low", "xhigh": "high"}.get(effort, effort)
    if style == "reasoning_effort":
        out["reasoning_effort"] = plain
    elif style == "openrouter":
        out["reasoning"] = {"effort": plain}
    elif style == "enable_thinking":
        out["enable_thinking"] = True
    else:
        dropped[
            "reasoning.effort (the model decides; no reasoning parameter for this provider)"
        ] += 1
