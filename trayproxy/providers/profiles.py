"""Provider profiles: what each provider's dialect of the OpenAI API needs. Pure data.

A profile is a small table. trayproxy picks one per provider (``profile = "groq"`` in
config.toml, or from the base URL's host) and applies it to every chat request it sends
there; config.toml can override any field of it. The facts behind each built-in entry are the
errors these providers answer to requests Continue and the OpenAI SDKs send (see
docs/providers.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

# Where remembered reasoning goes back into an assistant tool-call turn.
RESTORE_FIELDS = ("reasoning_content", "reasoning")
RESTORE_OFF = "off"
MESSAGES_AUTH = ("bearer", "x-api-key")
REASONING = ("none", "reasoning_effort", "openrouter", "enable_thinking")


@dataclass(frozen=True)
class Profile:
    name: str
    # body parameter -> the name this provider wants (the value moves; existing wins)
    rename_params: tuple[tuple[str, str], ...] = ()
    # body parameters this provider refuses; removed before sending
    drop_params: tuple[str, ...] = ()
    # fields removed from every message (Mistral refuses reasoning_content on history)
    drop_message_fields: tuple[str, ...] = ()
    # ask for stream_options.include_usage so that every stream's tokens are counted
    include_usage: bool = False
    # tool-call ids rewritten to 9 letters and digits (Mistral's rule)
    short_tool_call_ids: bool = False
    # put remembered reasoning back into assistant tool-call turns, in this field
    restore_reasoning: str = RESTORE_OFF
    # Anthropic Messages spoken natively at this base ("" = Chat Completions only: requests
    # are translated). "{base}" is the provider's base_url, "{origin}" its scheme and host.
    messages_base: str = ""
    messages_auth: str = "bearer"  # how the key goes to that endpoint ("x-api-key": Anthropic)
    # the Responses API spoken natively at this base ("" = Chat Completions only: translated)
    responses_base: str = ""
    # how a translated request asks for reasoning ("none", "reasoning_effort", "openrouter",
    # "enable_thinking"): a parameter the provider does not know would be refused
    reasoning_request: str = "none"
    # the provider's GET /models lists each model's price in OpenRouter's shape: trayproxy
    # reads it at start and daily, for the models config.toml gives no price
    price_list: bool = False


_TO_MAX_TOKENS = (("max_completion_tokens", "max_tokens"),)
# OpenAI-only parameters that strict OpenAI-compatible servers answer with a 400 or 422.
_OPENAI_ONLY = ("store", "metadata", "service_tier", "prediction", "modalities", "audio")

BUILTIN: dict[str, Profile] = {
    # OpenAI itself, and any server that speaks its dialect fully (vLLM, llama.cpp, LM
    # Studio...): only the stream's usage is asked for, which they all accept.
    "openai": Profile("openai", include_usage=True),
    "nvidia": Profile(
        "nvidia",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        include_usage=True,
        restore_reasoning="reasoning_content",  # Kimi K2 thinking and DeepSeek on NIM
    ),
    "groq": Profile(
        "groq",
        # Groq: "will result in a 400 error if they are supplied"
        drop_params=("logprobs", "logit_bias", "top_logprobs", *_OPENAI_ONLY),
        drop_message_fields=("name",),
        include_usage=True,
    ),
    "mistral": Profile(
        "mistral",
        rename_params=_TO_MAX_TOKENS,
        # 422 extra_forbidden for each; Mistral sends usage in its last chunk anyway
        drop_params=("stream_options", "logprobs", "top_logprobs", "logit_bias", *_OPENAI_ONLY),
        drop_message_fields=("reasoning_content", "reasoning"),
        short_tool_call_ids=True,
    ),
    "siliconflow": Profile(
        "siliconflow",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        include_usage=True,
        restore_reasoning="reasoning_content",
    ),
    "deepseek": Profile(
        "deepseek",
        rename_params=_TO_MAX_TOKENS,
        drop_params=("logit_bias", *_OPENAI_ONLY),
        include_usage=True,
        # "The `reasoning_content` in the thinking mode must be passed back to the API."
        restore_reasoning="reasoning_content",
        messages_base="{origin}/anthropic/v1",
    ),
    "moonshot": Profile(
        "moonshot",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        include_usage=True,
        # "thinking is enabled but reasoning_content is missing in assistant tool call message"
        restore_reasoning="reasoning_content",
        messages_base="{origin}/anthropic/v1",
    ),
    "openrouter": Profile(
        "openrouter",
        include_usage=True,
        restore_reasoning="reasoning",  # OpenRouter's name for it, passed to the model's host
        reasoning_request="openrouter",
        price_list=True,
    ),
    "ollama": Profile(
        "ollama",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        include_usage=True,
        messages_base="{base}",  # Ollama 0.14 and later serve /v1/messages
        responses_base="{base}",  # and /v1/responses
    ),
    # OpenAI's own API: the Responses API natively (the "openai" profile above is for any
    # other server that speaks OpenAI's Chat Completions, which may not serve it)
    "openai-api": Profile("openai-api", include_usage=True, responses_base="{base}"),
    # Anthropic: Messages natively; its Chat Completions compatibility for OpenAI clients.
    "anthropic": Profile(
        "anthropic",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        messages_base="{base}",
        messages_auth="x-api-key",
    ),
    "zai": Profile(
        "zai",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        include_usage=True,
        restore_reasoning="reasoning_content",
        messages_base="{origin}/api/anthropic/v1",
    ),
    "minimax": Profile(
        "minimax",
        rename_params=_TO_MAX_TOKENS,
        drop_params=_OPENAI_ONLY,
        include_usage=True,
        messages_base="{origin}/anthropic/v1",
    ),
}

# Host names (and their subdomains) that identify a provider.
_HOSTS = {
    "integrate.api.nvidia.com": "nvidia",
    "api.nvcf.nvidia.com": "nvidia",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral",
    "codestral.mistral.ai": "mistral",
    "api.siliconflow.cn": "siliconflow",
    "api.siliconflow.com": "siliconflow",
    "api.deepseek.com": "deepseek",
    "api.moonshot.ai": "moonshot",
    "api.moonshot.cn": "moonshot",
    "openrouter.ai": "openrouter",
    "api.openai.com": "openai-api",
    "api.anthropic.com": "anthropic",
    "api.z.ai": "zai",
    "open.bigmodel.cn": "zai",
    "api.minimax.io": "minimax",
    "api.minimaxi.com": "minimax",
}
OLLAMA_PORT = 11434


def infer(base_url: str) -> str:
    """The built-in profile a base URL points at; ``"openai"`` (no changes) when unknown."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    for known, name in _HOSTS.items():
        if host == known or host.endswith("." + known):
            return name
    try:
        port = parts.port
    except ValueError:
        port = None
    if port == OLLAMA_PORT:
        return "ollama"
    return "openai"


def expand_base(base: str, base_url: str) -> str | None:
    """A profile's ``messages_base`` or ``responses_base`` for a provider at ``base_url``:
    where it serves that protocol (its path is appended), or None when it speaks Chat
    Completions only."""
    if not base:
        return None
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return base.replace("{base}", base_url.rstrip("/")).replace("{origin}", origin).rstrip("/")


def with_overrides(base: Profile, **changes: object) -> Profile:
    """``base`` with the fields config.toml sets for one provider."""
    return replace(base, **{k: v for k, v in changes.items() if v is not None})
