"""Prompts too long for the model: with ``max_context_size`` set, a request whose estimated
prompt plus its ``max_tokens`` would not fit goes to the mapping's ``long_context`` id, or
gets the protocol's own context-length error at once (Claude Code and Codex compact the
conversation when they read it), instead of a slow failure at the provider. The estimate
and the decision go in the record.
"""

from __future__ import annotations

import asyncio
from typing import Any

from trayproxy.config.model import Config, ModelMapping
from trayproxy.core.estimate import IMAGE_TOKENS, request_tokens
from trayproxy.gateway.errors import Failure
from trayproxy.protocols.messages_request import MESSAGES
from trayproxy.records.logbook import RecordDraft
from trayproxy.routing.resolve import Route, resolve_chain

CHECKED = ("chat/completions", "completions", "responses", MESSAGES)
_OUTPUT_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def reserved_output(body: dict[str, Any], mapping: ModelMapping) -> int:
    """The output tokens a request keeps room for: what it asks (clamped to the mapping's
    ``max_output_tokens``, as it will be sent), else nothing."""
    for key in _OUTPUT_KEYS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limit = mapping.max_output_tokens
            return value if limit is None else min(value, limit)
    return 0


async def fit(
    config: Config,
    routes: list[Route],
    endpoint: str,
    body: dict[str, Any],
    raw: bytes,
    draft: RecordDraft,
) -> list[Route] | Failure:
    """The routes for a prompt of this size: ``routes``, its ``long_context`` id's, or a
    context-length failure."""
    if endpoint not in CHECKED:
        return routes
    mapping = config.models.get(routes[0].client_model)
    if mapping is None or mapping.max_context_size is None:
        return routes
    window = mapping.max_context_size
    output = reserved_output(body, mapping)
    # an estimate never exceeds the body's bytes (but for images): most requests stop here
    if len(raw) + output + IMAGE_TOKENS * raw.count(b"image") <= window:
        return routes
    prompt = await asyncio.to_thread(request_tokens, body)
    if prompt + output <= window:
        return routes
    said = (
        f"prompt ~{prompt} tokens + max_tokens {output} > max_context_size {window} of {mapping.id}"
    )
    if mapping.long_context:
        other = config.models.get(mapping.long_context)
        bigger = other.max_context_size if other is not None else None
        if other is None or bigger is None or prompt + reserved_output(body, other) <= bigger:
            draft.rewrites.append(f"long context: {said}: sent to {mapping.long_context}")
            return resolve_chain(config, mapping.long_context)
        said += f" (and {bigger} of long_context {mapping.long_context})"
        window = bigger
    draft.rewrites.append(f"too long: {said}: refused before sending")
    return _too_long(endpoint, prompt, output, window, mapping)


def _too_long(
    endpoint: str, prompt: int, output: int, window: int, mapping: ModelMapping
) -> Failure:
    need = prompt + output
    if endpoint == MESSAGES and prompt <= window:  # Claude Code retries with less max_tokens
        said = (
            f"input length and `max_tokens` exceed context limit: {prompt} + {output} > "
            f"{window}, decrease input length or `max_tokens` and try again"
        )
    elif endpoint == MESSAGES:  # Anthropic's words, which Claude Code reads the numbers from
        said = f"prompt is too long: {prompt} tokens > {window} maximum"  # the prompt alone
    else:  # OpenAI's words
        said = (
            f"This model's maximum context length is {window} tokens. However, you "
            f"requested {need} tokens ({prompt} in the messages, {output} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    hint = (
        " (trayproxy's estimate, against max_context_size of "
        f"{mapping.id!r} in config.toml; set long_context there to send such prompts to a "
        "model with a larger window.)"
    )
    return Failure(400, said + hint, "context_length_exceeded", final=True)
