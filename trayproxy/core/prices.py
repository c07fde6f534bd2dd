"""What a request cost: a model's prices (per million tokens) applied to the tokens it used.

A price is known or it is not: :func:`cost` returns None without one, and nothing here turns
an unknown price into 0. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PER = 1_000_000  # prices are per million tokens, as providers list them


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens. ``cached_input`` None: cached input is priced as input."""

    input: float
    output: float
    cached_input: float | None = None
    source: str = "config"  # "config", or where a price list came from ("openrouter")

    def describe(self) -> str:
        text = f"${_figure(self.input)} in / ${_figure(self.output)} out"
        if self.cached_input is not None:
            text += f" / ${_figure(self.cached_input)} cached"
        return text + " per M tokens"


def _figure(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def cost(
    price: Price | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> float | None:
    """Dollars for one request, or None when its price or its token counts are unknown.

    ``prompt_tokens`` counts the cached ones too (as OpenAI reports them); those are priced
    at ``cached_input``. Reasoning is output: a provider that reports it apart from a smaller
    completion count (it is not inside it) has it added.
    """
    if price is None or (prompt_tokens is None and completion_tokens is None):
        return None
    prompt = prompt_tokens or 0
    cached = min(cached_tokens or 0, prompt)
    output = completion_tokens or 0
    if reasoning_tokens and reasoning_tokens > output:
        output += reasoning_tokens
    cached_rate = price.input if price.cached_input is None else price.cached_input
    dollars = (prompt - cached) * price.input + cached * cached_rate + output * price.output
    return dollars / PER


def _per_million(value: Any) -> float | None:
    """A per-token price as a list gives it (a string or number) -> per million, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not 0 <= value < 1:  # -1: "varies" (a router)
        return None
    return round(value * PER, 6)


def from_model_list(data: Any, source: str) -> dict[str, Price]:
    """Prices from a provider's model list in OpenRouter's shape (``data[].pricing`` with
    ``prompt``, ``completion`` and ``input_cache_read`` in dollars per token), by model id.
    Models without a usable input and output price are left out: unknown, not free."""
    found: dict[str, Price] = {}
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return found
    for model in models:
        if not isinstance(model, dict) or not isinstance(model.get("id"), str):
            continue
        pricing = model.get("pricing")
        if not isinstance(pricing, dict):
            continue
        prompt = _per_million(pricing.get("prompt"))
        completion = _per_million(pricing.get("completion"))
        if prompt is None or completion is None:
            continue
        cached = _per_million(pricing.get("input_cache_read"))
        found[model["id"]] = Price(prompt, completion, cached, source)
    return found
