"""The config's schema, stated once: frozen dataclasses whose fields are the TOML keys and
whose defaults are the defaults. ``parse`` checks text against them; everything else reads
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from trayproxy.core.hosts import is_local
from trayproxy.core.prices import Price
from trayproxy.core.secret import Secret
from trayproxy.providers import profiles
from trayproxy.providers.profiles import Profile

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY_MB = 64
DEFAULT_MAX_ANSWER_MB = 64
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_FIRST_BYTE_TIMEOUT = 600.0  # thinking models may think for minutes before answering
DEFAULT_IDLE_TIMEOUT = 120.0  # between two stream events; keep-alive comments do not count
DEFAULT_LOG_SIZE = 500
# seconds a stream's client waits in silence before trayproxy tells it it is still there
DEFAULT_KEEPALIVE = 5.0
KEY_STRATEGIES = ("order", "round-robin")

CAPABILITIES = ("tool_use", "vision", "reasoning")
MAX_MODEL_ID = 256


def model_id_problem(model: str) -> str | None:
    """Why ``model`` cannot be a model id, or None. The one rule, for the ids in config.toml,
    the ids clients send, and the part of an id after a provider prefix."""
    if not 0 < len(model) <= MAX_MODEL_ID:
        return f"must be 1 to {MAX_MODEL_ID} characters long"
    if (" " in model or not model.isprintable()) and any(
        ch.isspace() or ord(ch) < 32 or ch == "\x7f" for ch in model
    ):
        return "must not contain spaces or control characters"
    return None


class ConfigError(ValueError):
    """A config that cannot be used. ``str()`` reads ``file:line: key: problem``."""

    def __init__(
        self, problem: str, *, file: str = "", line: int | None = None, key: str = ""
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


@dataclass(frozen=True)
class KeyRef:
    """Where a provider key comes from, and (hidden) what it is."""

    source: str  # "env:NAME", "keyring:NAME", "literal" or "none"
    secret: Secret | None = None
    # the key path in config.toml that holds the reference, for error messages
    at: tuple[str, ...] = field(default=(), compare=False, repr=False)
    # found with no api_key line (the keychain entry named after the provider, or its usual
    # variable): a key stored in the keychain for it would be read first
    automatic: bool = field(default=False, compare=False)

    @property
    def missing(self) -> bool:
        """A key was asked for but is not available (an unset environment variable)."""
        return self.source != "none" and not self.source.startswith("auto:") and not self.secret

    def describe(self) -> str:
        if self.source == "none":
            return "no key"
        if self.source.startswith("auto:"):
            return f"no api_key line: none in the keychain or ${self.source[5:]}"
        if self.source == "literal":
            return "literal key in config"
        if self.source.startswith("keyring:"):
            state = "found" if self.secret else "not found"
            return f"keychain entry {self.source[8:]} ({state})"
        name = self.source.removeprefix("env:")
        return f"${name}" + (" (set)" if self.secret else " (not set)")


def key_label(ref: KeyRef, position: int) -> str:
    """How a key is named where its value must not be: its variable or keychain entry, else
    its position in the provider's list."""
    kind, _, name = ref.source.partition(":")
    if kind == "auto":
        return name
    if kind in ("env", "keyring") and name:
        return name
    return f"key {position}"


@dataclass(frozen=True)
class ProviderKey:
    """One of a provider's keys, and the label it is shown by."""

    label: str
    ref: KeyRef


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    api_key: KeyRef  # the key, or the first of ``api_keys``
    # several keys, used in turn as they are rate-limited or rejected (empty: ``api_key``)
    api_keys: tuple[ProviderKey, ...] = ()
    key_strategy: str = "order"  # "order": the first ready key; "round-robin": in turn
    headers: tuple[tuple[str, KeyRef], ...] = ()  # values may be secrets too
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    profile: Profile = profiles.BUILTIN["openai"]
    profile_inferred: bool = True  # chosen from base_url, not named in config.toml
    # a streamed request's client hears from trayproxy after this many seconds of silence
    # while the provider thinks (0: never)
    keepalive_seconds: float = DEFAULT_KEEPALIVE
    price: Price | None = None  # for every model of this provider without its own

    @property
    def keys(self) -> tuple[ProviderKey, ...]:
        """The keys requests may use, in order."""
        if self.api_keys:
            return self.api_keys
        return (ProviderKey(key_label(self.api_key, 1), self.api_key),)

    def describe_key(self) -> str:
        """Where its key or keys come from (never a key): for ``trayproxy check`` and the page."""
        if not self.api_keys:
            return self.api_key.describe()
        states = ", ".join(
            f"{key.label} ({'not set' if key.ref.missing else 'set'})" for key in self.api_keys
        )
        return f"{len(self.api_keys)} keys, {self.key_strategy}: {states}"

    @property
    def needs_key(self) -> bool:
        """Requests to it fail for want of a key: a reference that reads nothing, or (with no
        ``api_key`` line) no key found for a provider off this machine and its network, where
        a server usually takes none (a local Ollama)."""
        if any(ref.missing for _, ref in self.headers):
            return True
        if self.api_keys:
            return all(key.ref.missing for key in self.api_keys)
        if self.api_key.missing:
            return True
        if not self.api_key.source.startswith("auto:") or self.api_key.secret is not None:
            return False
        if any(ref.secret is not None for _, ref in self.headers):  # its own auth header
            return False
        return not is_local(urlsplit(self.base_url).hostname or "")


@dataclass(frozen=True)
class ModelMapping:
    """A client model id (what the editor sends) and the name the provider expects."""

    id: str
    provider: str
    model: str
    max_context_size: int | None = None
    max_output_tokens: int | None = None
    fallbacks: tuple[str, ...] = ()  # other client ids to try when this one fails to start
    capabilities: tuple[str, ...] = ()  # from CAPABILITIES
    price: Price | None = None  # None: the provider's, or its price list's, or unknown
    # the id that serves prompts too long for max_context_size ("": refused at once)
    long_context: str = ""


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_mb: int = DEFAULT_MAX_BODY_MB
    max_answer_mb: int = DEFAULT_MAX_ANSWER_MB  # a non-streamed answer, decompressed
    watch_config: bool = True
    log_size: int = DEFAULT_LOG_SIZE
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    token: KeyRef = field(default_factory=lambda: KeyRef("none"))  # clients must send it

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * 1024 * 1024

    @property
    def max_answer_bytes(self) -> int:
        return self.max_answer_mb * 1024 * 1024


@dataclass(frozen=True)
class HistorySettings:
    days: int = 30  # how long the routing history is kept


@dataclass(frozen=True)
class RoutingSettings:
    provider_prefix: bool = True


@dataclass(frozen=True)
class CostSettings:
    daily_budget: float | None = None  # dollars a day; passing it raises one notification


@dataclass(frozen=True)
class ClaudeCodeSettings:
    """The mapped ids that serve Claude Code's main and small (fast, background) models."""

    model: str = ""  # "" : the first mapped id
    small_model: str = ""  # "" : the main one


def _frozen(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    claude_code: ClaudeCodeSettings = field(default_factory=ClaudeCodeSettings)
    costs: CostSettings = field(default_factory=CostSettings)
    providers: Mapping[str, Provider] = field(default_factory=lambda: _frozen({}))
    models: Mapping[str, ModelMapping] = field(default_factory=lambda: _frozen({}))
    source: str = ""
    # what is valid but probably not meant (``file:line: key: ...``), for check and the app
    warnings: tuple[str, ...] = ()

    def secret_values(self) -> list[str]:
        """Every key and secret header value, for redaction."""
        found = []
        for provider in self.providers.values():
            refs = [provider.api_key, *(k.ref for k in provider.api_keys)]
            refs += [ref for _, ref in provider.headers]
            found += [r.secret.reveal() for r in refs if r.secret and r.source != "none"]
        if self.server.token.secret:
            found.append(self.server.token.secret.reveal())
        return found

    def with_server(self, **changes: Any) -> Config:
        return replace(self, server=replace(self.server, **changes))


def _keys(cls: type, *, besides: tuple[str, ...] = ()) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls) if f.name not in besides)


# The keys each table of config.toml takes: the fields above (a provider's table also takes
# every field of its profile, to override it).
SECTIONS = _keys(Config, besides=("source", "warnings"))
SERVER_KEYS = _keys(ServerSettings)
ROUTING_KEYS = _keys(RoutingSettings)
HISTORY_KEYS = _keys(HistorySettings)
CLAUDE_CODE_KEYS = _keys(ClaudeCodeSettings)
COSTS_KEYS = _keys(CostSettings)
PRICE_KEYS = frozenset({"input", "output", "cached_input"})
PROFILE_KEYS = _keys(Profile, besides=("name",))
PROVIDER_KEYS = _keys(Provider, besides=("name", "profile_inferred")) | PROFILE_KEYS
MODEL_KEYS = _keys(ModelMapping, besides=("id",))
