"""An Anthropic Messages request as a Chat Completions request, for providers that speak only
Chat Completions. Everything a coding agent sends has a place or is dropped and named:

- ``system`` (a string or text blocks) becomes the first system message; a ``system`` message
  in the middle of ``messages`` (Claude Code's reminders) becomes user text, since many
  models' chat templates accept a system message only first.
- text and image blocks become content parts (text alone: a plain string, which every
  provider takes); ``tool_use`` blocks become ``tool_calls``; ``tool_result`` blocks become
  ``tool`` messages (error results marked, several blocks joined, images moved to a user
  message after them); ``thinking`` blocks become the turn's ``reasoning_content``, which
  Kimi and DeepSeek need back after a tool call.
- ``tools`` become functions (Anthropic's server tools, which only Anthropic runs, are
  dropped); ``tool_choice`` and ``disable_parallel_tool_use`` map to their Chat equivalents;
  ``thinking`` goes to the provider's reasoning parameter where its profile names one.
- ``cache_control``, ``metadata``, ``top_k``, ``context_management``, ``output_config``, tool
  flags such as ``defer_loading``, and anything unknown are dropped and listed in the notes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from trayproxy.protocols import tool_ids

MESSAGES = "messages"
COUNT_TOKENS = "messages/count_tokens"

# The top-level fields translated (or read) below; any other is dropped and named.
_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
    }
)
# Tool fields that only Anthropic reads.
_TOOL_FLAGS = ("cache_control", "defer_loading", "strict", "input_examples", "allowed_callers")


@dataclass
class Translated:
    body: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def to_chat(
    body: dict[str, Any], *, reasoning: str = "none", include_usage: bool = True
) -> Translated:
    """The Chat Completions body for a Messages ``body`` (which is not modified)."""
    dropped: Counter[str] = Counter()
    moved = 0
    messages: list[dict[str, Any]] = []
    system = _text(body.get("system"), dropped)
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "system":
            moved += 1
            text = _text(message.get("content"), dropped)
            if text:
                messages.append({"role": "user", "content": text})
            continue
        messages.extend(_message(message, dropped))
    out: dict[str, Any] = {"model": body.get("model"), "messages": _merged(messages)}
    for key in ("max_tokens", "temperature", "top_p"):
        if key in body:
            out[key] = body[key]
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = stops
    if body.get("stream") is True:
        out["stream"] = True
        if include_usage:  # message_delta needs the counts (a profile may say no)
            out["stream_options"] = {"include_usage": True}
    _tools(body, out, dropped)
    _thinking(body, out, reasoning, dropped)
    for key in body:
        if key not in _TRANSLATED:
            dropped[key] += 1
    notes = ["Anthropic Messages → Chat Completions"]
    if moved:
        notes.append(f"system messages in the conversation sent as user text ({moved})")
    if dropped:
        notes.append("dropped: " + ", ".join(_counted(dropped)))
    return Translated(out, notes)


def _counted(dropped: Counter[str]) -> list[str]:
    return [name if n == 1 else f"{name} ×{n}" for name, n in sorted(dropped.items())]


def _text(value: Any, dropped: Counter[str]) -> str:
    """A string or a list of text blocks as one string."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    parts = []
    for kind, block in _blocks(value, dropped):
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        else:
            dropped[f"{kind} block"] += 1
    return "\n\n".join(parts)


def _image(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _blocks(blocks: list[Any], dropped: Counter[str]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each block as (its type, itself), a bare string as a text block; what Anthropic alone
    reads in them (``cache_control``) counted as dropped."""
    for block in blocks:
        if isinstance(block, str):
            block = {"type": "text", "text": block}
        if not isinstance(block, dict):
            continue
        if "cache_control" in block:
            dropped["cache_control"] += 1
        yield block.get("type"), block


def _parts(blocks: list[Any], dropped: Counter[str]) -> list[dict[str, Any]]:
    """Text and image blocks as Chat content parts."""
    parts: list[dict[str, Any]] = []
    for kind, block in _blocks(blocks, dropped):
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and (image := _image(block)) is not None:
            parts.append(image)
        elif kind == "document" and isinstance(block.get("source"), dict):
            source = block["source"]
            if source.get("type") == "text" and isinstance(source.get("data"), str):
                parts.append({"type": "text", "text": source["data"]})
            else:
                dropped["document block"] += 1
        else:
            dropped[f"{kind} block"] += 1
    return parts


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text alone as a plain string (some providers take nothing else), else the parts."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _message(message: dict[str, Any], dropped: Counter[str]) -> list[dict[str, Any]]:
    role, content = message.get("role"), message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        return []
    if role == "assistant":
        return [_assistant(content, dropped)]
    out: list[dict[str, Any]] = []
    later: list[Any] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            result, images = _tool_result(block, dropped)
            out.append(result)
            later.extend(images)
        else:
            later.append(block)
    parts = _parts(later, dropped)
    if parts:
        out.append({"role": "user", "content": _content(parts)})
    return out


def _tool_result(
    block: dict[str, Any], dropped: Counter[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A ``tool`` message, and the images it held (a tool message carries text only)."""
    if "cache_control" in block:
        dropped["cache_control"] += 1
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if isinstance(content, list):
        images = [b for b in content if isinstance(b, dict) and b.get("type") == "image"]
        texts = [b for b in content if not (isinstance(b, dict) and b.get("type") == "image")]
        text = "\n".join(p["text"] for p in _parts(texts, dropped) if p["type"] == "text")
    else:
        text = content if isinstance(content, str) else ""
    if block.get("is_error") is True:
        text = "Error: " + text if text else "Error"
    call_id = tool_ids.for_provider(block.get("tool_use_id"))
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _assistant(blocks: list[Any], dropped: Counter[str]) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for kind, block in _blocks(blocks, dropped):
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": tool_ids.for_provider(block.get("id")),
                    "type": "function",
                    "function": {"name": block.get("name") or "", "arguments": arguments},
                }
            )
        else:
            dropped[f"{kind} block"] += 1
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = calls
    if thinking:
        out["reasoning_content"] = "".join(thinking)
    if out["content"] is None and not calls:
        out["content"] = ""
    return out


def _merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive user messages as one: several providers want roles to alternate."""
    out: list[dict[str, Any]] = []
    for message in messages:
        last = out[-1] if out else None
        if last is not None and last["role"] == "user" == message["role"]:
            a, b = last["content"], message["content"]
            if isinstance(a, str) and isinstance(b, str):
                last["content"] = f"{a}\n\n{b}" if a and b else a or b
            else:
                last["content"] = _as_parts(a) + _as_parts(b)
            continue
        out.append(dict(message))
    return out


def _as_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _tools(body: dict[str, Any], out: dict[str, Any], dropped: Counter[str]) -> None:
    functions = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if "input_schema" not in tool:  # a server tool (web_search_...): Anthropic runs it
            dropped[f"server tool {tool.get('type') or tool.get('name')}"] += 1
            continue
        for flag in _TOOL_FLAGS:
            if flag in tool:
                dropped[f"tool flag {flag}"] += 1
        schema = tool.get("input_schema")
        if isinstance(schema, dict) and "$schema" in schema:
            schema = {k: v for k, v in schema.items() if k != "$schema"}
        function: dict[str, Any] = {"name": tool.get("name"), "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        functions.append({"type": "function", "function": function})
    if functions:
        out["tools"] = functions
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or not functions:
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _effort(body: dict[str, Any], budget: int | None) -> str:
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort in ("low", "medium", "high"):
        return str(effort)
    if effort == "max":
        return "high"
    if budget is None:
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def _thinking(body: dict[str, Any], out: dict[str, Any], style: str, dropped: Counter[str]) -> None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return
    budget = thinking.get("budget_tokens")
    budget = budget if isinstance(budget, int) and not isinstance(budget, bool) else None
    if style == "reasoning_effort":
        out["reasoning_effort"] = _effort(body, budget)
    elif style == "openrouter":
        out["reasoning"] = {"max_tokens": budget} if budget else {"effort": _effort(body, None)}
    elif style == "enable_thinking":
        out["enable_thinking"] = True
        if budget:
            out["thinking_budget"] = budget
    else:
        dropped["thinking (the model decides; no reasoning parameter for this provider)"] += 1
