"""The Chat Completions shapes the provider fixes read: the endpoints they apply to, and the
choices of an answer or a stream chunk."""

from __future__ import annotations

from typing import Any

CHAT = "chat/completions"
COMPLETIONS = "completions"


def choices_of(obj: Any) -> list[dict[str, Any]]:
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict)]
