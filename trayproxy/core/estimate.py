"""Token counts estimated from text, for answers whose provider reports none.

No tokenizer is shipped: each model family has its own, and a BPE table is megabytes. Text is
cut where BPE tokenizers cut it (words, numbers, punctuation runs, line breaks) and each piece
is priced: a word of up to 9 ASCII letters is one token, a longer one a token per 6 letters; a
CJK character 0.8 of a token; other scripts a token per 3.5 letters; 3 digits or 3
punctuation marks a token. Measured against cl100k and o200k (``python -m
bench.estimate_accuracy``, 2026-12-05): within 7% on English prose, Markdown, Python and CSS,
7% on Chinese and 6% on Russian (where characters / 4 is off by 71% and 28%), 15% on
JavaScript, 17% on a lock file of hashes; a chat request comes out 15% over its bare text,
which is about what the chat format adds around each message.
Figures from here are marked as estimated wherever they are shown.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_PIECE = re.compile(r" ?_*[^\W\d_]+| ?\d+|\s+|[^\w\s]+|_+")
# A longer text is priced by its first part, scaled: the estimate stays a few milliseconds.
_MAX_MEASURED = 256 * 1024
IMAGE_TOKENS = 800  # an image in a prompt, its size unknown (about 1000 x 750 pixels)
MESSAGE_TOKENS = 3  # what each message adds around its content (role, separators)


def _cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF


def text_tokens(text: str) -> int:
    """About how many tokens ``text`` is."""
    if len(text) > _MAX_MEASURED:
        part = text[:_MAX_MEASURED]
        return round(text_tokens(part) * len(text) / len(part))
    n = 0.0
    for match in _PIECE.finditer(text):
        piece = match.group()
        if piece[-1].isspace():
            if len(piece) > 1 or piece == "\n":
                n += 1  # a line break with its indentation, a run of spaces
            continue
        word = piece.lstrip(" ").lstrip("_") or "_"
        first = word[0]
        if first.isdigit():
            n += math.ceil(len(word) / 3)
        elif first.isalpha():
            if word.isascii():
                n += 1 if len(word) <= 9 else math.ceil(len(word) / 6)
            else:
                cjk = sum(map(_cjk, word))
                n += cjk * 0.8 + math.ceil((len(word) - cjk) / 3.5)
        elif first == "_":
            n += 1
        else:
            n += math.ceil(len(word) / 3)
    return round(n)


# Fields that carry no text the model reads (or an opaque blob it does not read as text).
_SKIP = frozenset({"type", "cache_control", "signature", "detail", "id", "index", "format"})


def _content(value: Any) -> int:
    if isinstance(value, str):
        if value.startswith("data:") and ";base64," in value[:100]:
            return IMAGE_TOKENS
        return text_tokens(value)
    if isinstance(value, list):
        return sum(_content(item) for item in value)
    if isinstance(value, dict):
        if value.get("type") in ("image_url", "input_image", "image"):
            return IMAGE_TOKENS
        inner = sum(_content(v) for k, v in value.items() if k not in _SKIP)
        return inner + (MESSAGE_TOKENS if "role" in value else 0)
    return 0


def request_tokens(body: dict[str, Any]) -> int:
    """About how many tokens a request's prompt is: messages (Chat, Anthropic), input and
    instructions (Responses), prompt (Completions), input (embeddings), query and documents
    (rerank), and the tool
    definitions and output schemas, which providers put in the prompt too."""
    n = 0
    for key in ("system", "instructions", "messages", "input", "prompt", "query", "documents"):
        if key in body:
            n += _content(body[key])
    for key in ("tools", "functions", "response_format"):
        if body.get(key):
            n += text_tokens(json.dumps(body[key], ensure_ascii=False))
    return n + (MESSAGE_TOKENS if "messages" in body else 0)


# What a model wrote, in a Chat, Completions or Responses answer, whole or as stream events.
# ("delta" is a Responses stream event's text)
_WRITTEN = frozenset(
    {"content", "reasoning_content", "reasoning", "refusal", "text", "arguments", "name", "delta"}
)


def written_text(obj: Any, into: list[str]) -> None:
    """Append to ``into`` the text a model wrote in ``obj`` (an answer or a stream event)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in _WRITTEN and isinstance(value, str):
                into.append(value)
            elif isinstance(value, (dict, list)) and key not in ("usage", "logprobs"):
                written_text(value, into)
    elif isinstance(obj, list):
        for item in obj:
            written_text(item, into)


def answer_tokens(obj: Any) -> int:
    """About how many tokens a model wrote in a whole (non-streamed) answer."""
    found: list[str] = []
    for key in ("choices", "output", "content"):
        if isinstance(obj, dict) and key in obj:
            written_text(obj[key], found)
    return text_tokens("\n".join(found))
