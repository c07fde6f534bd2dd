"""TOML text -> a validated, frozen :class:`Config`.

Everything here is pure except :func:`load_file` and :func:`ensure_config_file`. Every error is
a :class:`ConfigError` naming the file, the line (when it can be found) and the key path.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from trayproxy.config.lines import format_key_path, line_of
from trayproxy.core.secret import Secret
from trayproxy.providers import profiles
from trayproxy.providers.profiles import Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY_MB = 64
DEFAULT_MAX_ANSWER_MB = 64
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_FIRST_BYTE_TIMEOUT = 600.0  # thinking models may think for minutes before answering
DEFAULT_IDLE_TIMEOUT = 120.0  # between two stream events; keep-alive comments do not count
DEFAULT_LOG_SIZE = 500

SECTIONS = frozenset({"server", "routing", "history", "providers", "models"})
HISTORY_KEYS = frozenset({"days"})
CAPABILITIES = ("tool_use", "vision", "reasoning")
SERVER_KEYS = frozenset(
    {
        "host",
        "port",
        "max_body_mb",
        "max_answer_mb",
        "watch_config",
        "log_size",
        "allowed_origins",
        "allowed_hosts",
        "token",
    }
)
ROUTING_KEYS = frozenset({"provider_prefix"})
PROVIDER_KEYS = frozenset(
    {
        "base_url",
        "api_key",
        "headers",
        "connect_timeout",
        "first_byte_timeout",
        "idle_timeout",
        "profile",
        "rename_params",
        "drop_params",
        "drop_message_fields",
        "include_usage",
        "short_tool_call_ids",
        "restore_reasoning",
    }
)
MODEL_KEYS = frozenset(
    {"provider", "model", "max_context_size", "max_output_tokens", "fallbacks", "capabilities"}
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


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

    source: str  # "env:NAME", "literal" or "none"
    secret: Secret | None = None

    @property
    def missing(self) -> bool:
        """A key was asked for but is not available (an unset environment variable)."""
        return self.source != "none" and self.secret is None

    def describe(self) -> str:
        if self.source == "none":
            return "no key"
        if self.source == "literal":
            return "literal key in config"
        if self.source.startswith("keyring:"):
            state = "found" if self.secret else "not found"
            return f"keychain entry {self.source[8:]} ({state})"
        name = self.source.removeprefix("env:")
        return f"${name}" + (" (set)" if self.secret else " (not set)")


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    api_key: KeyRef
    headers: tuple[tuple[str, KeyRef], ...] = ()  # values may be secrets too
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    profile: Profile = profiles.BUILTIN["openai"]
    profile_inferred: bool = True  # chosen from base_url, not named in config.toml


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


def _frozen(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    providers: Mapping[str, Provider] = field(default_factory=lambda: _frozen({}))
    models: Mapping[str, ModelMapping] = field(default_factory=lambda: _frozen({}))
    source: str = ""

    def secret_values(self) -> list[str]:
        """Every key and secret header value, for redaction."""
        found = []
        for provider in self.providers.values():
            refs = [provider.api_key, *(ref for _, ref in provider.headers)]
            found += [r.secret.reveal() for r in refs if r.secret and r.source != "none"]
        if self.server.token.secret:
            found.append(self.server.token.secret.reveal())
        return found

    def with_server(self, **changes: Any) -> Config:
        from dataclasses import replace

        return replace(self, server=replace(self.server, **changes))


# ---------------------------------------------------------------- validation helpers


class _Checker:
    """Turns a problem at a key path into a located ConfigError."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file

    def fail(self, path: tuple[str, ...], problem: str) -> ConfigError:
        return ConfigError(
            problem, file=self.file, line=line_of(self.text, path), key=format_key_path(path)
        )

    def table(self, value: Any, path: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {_kind(value)}")
        return value

    def only_keys(
        self, table: dict[str, Any], path: tuple[str, ...], known: frozenset[str]
    ) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, sorted(known), n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                allowed = ", ".join(sorted(known))
                raise self.fail((*path, key), f"unknown key{extra}; allowed here: {allowed}")

    def string(self, table: dict[str, Any], path: tuple[str, ...], key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail((*path, key), f"must be a string, not {_kind(value)}")
        return value

    def number(
        self,
        table: dict[str, Any],
        path: tuple[str, ...],
        key: str,
        *,
        integer: bool,
        low: float,
        high: float,
    ) -> Any:
        value = table.get(key)
        if value is None:
            return None
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            want = "an integer" if integer else "a number"
            raise self.fail((*path, key), f"must be {want}, not {_kind(value)}")
        if not low <= value <= high:
            raise self.fail((*path, key), f"must be between {low:g} and {high:g}, not {value}")
        return value

    def boolean(self, table: dict[str, Any], path: tuple[str, ...], key: str) -> bool | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail((*path, key), f"must be true or false, not {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        dict: "a table",
        list: "an array",
    }.get(type(value), type(value).__name__)


class KeyRefError(ValueError):
    pass


def _key_ref(raw: str, environ: Mapping[str, str]) -> KeyRef:
    """``env:NAME`` or ``keyring:NAME`` (read now), a literal value, or "" for none."""
    if raw.startswith("env:"):
        name = raw[4:].strip()
        if not name:
            raise KeyRefError('names no variable: write "env:NAME"')
        value = _sendable(environ.get(name, "").strip(), f"the environment variable {name}")
        return KeyRef(f"env:{name}", Secret(value) if value else None)
    if raw.startswith("keyring:"):
        name = raw[8:].strip()
        if not name:
            raise KeyRefError('names no entry: write "keyring:NAME"')
        return KeyRef(f"keyring:{name}", _from_keyring(name))
    if not raw:
        return KeyRef("none")
    return KeyRef("literal", Secret(_sendable(raw, "the value")))


def _sendable(value: str, what: str) -> str:
    """``value``, if it can go in an HTTP header (keys and tokens do)."""
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise KeyRefError(f"{what} holds a line break or control character")
    return value


KEYRING_SERVICE = "trayproxy"


def _from_keyring(name: str) -> Secret | None:
    """The OS keychain entry (service "trayproxy", user NAME), via the keyring package."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise KeyRefError(
            "keyring: references need the keyring package (pip install keyring)"
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise KeyRefError(
            f"the OS keychain cannot be read ({type(exc).__name__}: {exc}); use env:NAME "
            "instead, or install a keyring backend"
        ) from None
    value = _sendable((value or "").strip(), f"the keychain entry {name!r}")
    return Secret(value) if value else None


# ---------------------------------------------------------------- sections


def _server(c: _Checker, raw: Any, environ: Mapping[str, str]) -> ServerSettings:
    path = ("server",)
    t = c.table(raw, path)
    c.only_keys(t, path, SERVER_KEYS)
    host = c.string(t, path, "host")
    if host is not None and not host.strip():
        raise c.fail((*path, "host"), "must not be empty")
    port = c.number(t, path, "port", integer=True, low=0, high=65535)
    body = c.number(t, path, "max_body_mb", integer=True, low=1, high=4096)
    answer = c.number(t, path, "max_answer_mb", integer=True, low=1, high=4096)
    watch = c.boolean(t, path, "watch_config")
    log_size = c.number(t, path, "log_size", integer=True, low=10, high=100_000)
    origins = _string_list(c, t, path, "allowed_origins")
    for i, origin in enumerate(origins):
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or origin.endswith("/")
        ):
            raise c.fail(
                (*path, "allowed_origins"),
                f'item {i + 1} must be an origin like "http://localhost:3000", not {origin!r}',
            )
    hosts = _string_list(c, t, path, "allowed_hosts")
    token_raw = c.string(t, path, "token")
    try:
        token = _key_ref((token_raw or "").strip(), environ)
    except KeyRefError as exc:
        raise c.fail((*path, "token"), str(exc)) from None
    if token.missing:
        raise c.fail((*path, "token"), f"reads {token.source}, which is not set")
    if token.secret is not None and len(token.secret.reveal()) < 16:
        raise c.fail((*path, "token"), "must be at least 16 characters long")
    d = ServerSettings()
    return ServerSettings(
        host=d.host if host is None else host.strip(),
        port=d.port if port is None else port,
        max_body_mb=d.max_body_mb if body is None else body,
        max_answer_mb=d.max_answer_mb if answer is None else answer,
        watch_config=d.watch_config if watch is None else watch,
        log_size=d.log_size if log_size is None else log_size,
        allowed_origins=tuple(origins),
        allowed_hosts=tuple(h.strip().lower() for h in hosts),
        token=token,
    )


def _string_list(c: _Checker, t: dict[str, Any], path: tuple[str, ...], key: str) -> list[str]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise c.fail((*path, key), "must be a list of non-empty strings")
    return [v.strip() for v in value]


def _routing(c: _Checker, raw: Any) -> RoutingSettings:
    path = ("routing",)
    t = c.table(raw, path)
    c.only_keys(t, path, ROUTING_KEYS)
    prefix = c.boolean(t, path, "provider_prefix")
    return RoutingSettings(provider_prefix=True if prefix is None else prefix)


def _history(c: _Checker, raw: Any) -> HistorySettings:
    path = ("history",)
    t = c.table(raw, path)
    c.only_keys(t, path, HISTORY_KEYS)
    days = c.number(t, path, "days", integer=True, low=1, high=3650)
    return HistorySettings(days=30 if days is None else days)


def _base_url(c: _Checker, path: tuple[str, ...], value: str | None) -> str:
    if not value:
        raise c.fail(path, 'is required (for example "https://api.groq.com/openai/v1")')
    url = value.strip()
    if any(ch.isspace() or ord(ch) < 32 or ch == "\x7f" for ch in url):
        raise c.fail(path, f"must not contain spaces or control characters: {value!r}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise c.fail(path, f"is not a valid URL ({exc}): {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise c.fail(path, f"must be an http:// or https:// URL, not {value!r}")
    if port == 0:
        raise c.fail(path, f"has port 0: {value!r}")
    if parts.query or parts.fragment:
        raise c.fail(path, "must not have a query string or fragment")
    if parts.username or parts.password:
        raise c.fail(path, "must not carry credentials; use api_key")
    return url.rstrip("/")


def _provider(c: _Checker, name: str, raw: Any, environ: Mapping[str, str]) -> Provider:
    path = ("providers", name)
    if not _NAME.fullmatch(name):
        raise c.fail(path, "provider names use letters, digits, '_', '-' and '.' only")
    t = c.table(raw, path)
    c.only_keys(t, path, PROVIDER_KEYS)
    base_url = _base_url(c, (*path, "base_url"), c.string(t, path, "base_url"))
    key_raw = c.string(t, path, "api_key")
    try:
        api_key = _key_ref((key_raw or "").strip(), environ)
    except KeyRefError as exc:
        raise c.fail((*path, "api_key"), str(exc)) from None
    headers: list[tuple[str, KeyRef]] = []
    if "headers" in t:
        hpath = (*path, "headers")
        for hname, hvalue in c.table(t["headers"], hpath).items():
            if not _HEADER_NAME.fullmatch(hname) or hname.lower() in _RESERVED_HEADERS:
                raise c.fail((*hpath, hname), "is not a header trayproxy can set")
            if not isinstance(hvalue, str):
                raise c.fail((*hpath, hname), f"must be a string, not {_kind(hvalue)}")
            if any(ord(ch) < 32 or ch == "\x7f" for ch in hvalue):
                raise c.fail((*hpath, hname), "must not contain control characters")
            try:
                ref = _key_ref(hvalue.strip(), environ)
            except KeyRefError as exc:
                raise c.fail((*hpath, hname), str(exc)) from None
            if ref.source == "none":
                raise c.fail((*hpath, hname), "must not be empty")
            headers.append((hname, ref))
    connect = c.number(t, path, "connect_timeout", integer=False, low=0.1, high=3600)
    first = c.number(t, path, "first_byte_timeout", integer=False, low=0.1, high=86400)
    idle = c.number(t, path, "idle_timeout", integer=False, low=0.1, high=86400)
    profile, inferred = _profile(c, path, t, base_url)
    return Provider(
        name=name,
        base_url=base_url,
        api_key=api_key,
        headers=tuple(headers),
        connect_timeout=DEFAULT_CONNECT_TIMEOUT if connect is None else float(connect),
        first_byte_timeout=DEFAULT_FIRST_BYTE_TIMEOUT if first is None else float(first),
        idle_timeout=DEFAULT_IDLE_TIMEOUT if idle is None else float(idle),
        profile=profile,
        profile_inferred=inferred,
    )


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _names(
    c: _Checker, t: dict[str, Any], path: tuple[str, ...], key: str
) -> tuple[str, ...] | None:
    value = t.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _PARAM_NAME.fullmatch(v) for v in value
    ):
        raise c.fail((*path, key), 'must be a list of parameter names, like ["store", "user"]')
    return tuple(dict.fromkeys(value))


def _profile(
    c: _Checker, path: tuple[str, ...], t: dict[str, Any], base_url: str
) -> tuple[Profile, bool]:
    name = c.string(t, path, "profile")
    inferred = name is None
    if name is None:
        name = profiles.infer(base_url)
    elif name not in profiles.BUILTIN:
        hint = difflib.get_close_matches(name, sorted(profiles.BUILTIN), n=1)
        extra = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise c.fail(
            (*path, "profile"),
            f"unknown profile '{name}'{extra}; built in: " + ", ".join(sorted(profiles.BUILTIN)),
        )
    renames = None
    if "rename_params" in t:
        rpath = (*path, "rename_params")
        table = c.table(t["rename_params"], rpath)
        for src, dst in table.items():
            if (
                not _PARAM_NAME.fullmatch(src)
                or not isinstance(dst, str)
                or not _PARAM_NAME.fullmatch(dst)
            ):
                raise c.fail(
                    (*rpath, src),
                    "must map a parameter name to the provider's name for it, "
                    'like max_completion_tokens = "max_tokens"',
                )
        renames = tuple(table.items())
    restore = c.string(t, path, "restore_reasoning")
    allowed = (*profiles.RESTORE_FIELDS, profiles.RESTORE_OFF)
    if restore is not None and restore not in allowed:
        raise c.fail(
            (*path, "restore_reasoning"), "must be one of " + ", ".join(f'"{a}"' for a in allowed)
        )
    profile = profiles.with_overrides(
        profiles.BUILTIN[name],
        rename_params=renames,
        drop_params=_names(c, t, path, "drop_params"),
        drop_message_fields=_names(c, t, path, "drop_message_fields"),
        include_usage=c.boolean(t, path, "include_usage"),
        short_tool_call_ids=c.boolean(t, path, "short_tool_call_ids"),
        restore_reasoning=restore,
    )
    return profile, inferred


def _model(c: _Checker, model_id: str, raw: Any, providers: Mapping[str, Provider]) -> ModelMapping:
    path = ("models", model_id)
    if not model_id.strip() or any(ch.isspace() or ord(ch) < 32 for ch in model_id):
        raise c.fail(path, "model ids must be non-empty, without spaces or control characters")
    t = c.table(raw, path)
    c.only_keys(t, path, MODEL_KEYS)
    provider = c.string(t, path, "provider")
    if not provider:
        raise c.fail((*path, "provider"), "is required: the provider that serves this model")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise c.fail(
            (*path, "provider"),
            f"names provider '{provider}', which is not configured (configured: {known})",
        )
    upstream = c.string(t, path, "model")
    if upstream is not None and not upstream.strip():
        raise c.fail((*path, "model"), "must not be empty")
    ctx = c.number(t, path, "max_context_size", integer=True, low=1, high=100_000_000)
    out = c.number(t, path, "max_output_tokens", integer=True, low=1, high=100_000_000)
    fallbacks = t.get("fallbacks", [])
    if not isinstance(fallbacks, list) or not all(
        isinstance(f, str) and f.strip() for f in fallbacks
    ):
        raise c.fail(
            (*path, "fallbacks"), 'must be a list of model ids, like ["groq/gpt-oss-120b"]'
        )
    if model_id in fallbacks:
        raise c.fail((*path, "fallbacks"), "must not name the model itself")
    capabilities = t.get("capabilities", [])
    if not isinstance(capabilities, list) or any(cap not in CAPABILITIES for cap in capabilities):
        raise c.fail(
            (*path, "capabilities"),
            "must be a list of " + ", ".join(f'"{cap}"' for cap in CAPABILITIES),
        )
    return ModelMapping(
        id=model_id,
        provider=provider,
        model=(upstream or model_id).strip(),
        max_context_size=ctx,
        max_output_tokens=out,
        fallbacks=tuple(dict.fromkeys(f.strip() for f in fallbacks)),
        capabilities=tuple(dict.fromkeys(capabilities)),
    )


# ---------------------------------------------------------------- entry points


def parse(text: str, *, file: str = "", environ: Mapping[str, str] | None = None) -> Config:
    """Parse and validate config text. Raises :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else None
        if m is None and "(at end of document)" in msg:
            line = max(1, len(text.rstrip("\n").split("\n")))
        problem = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        if m:
            problem += f" (column {m.group(2)})"
        raise ConfigError(f"not valid TOML: {problem}", file=file, line=line) from None
    c = _Checker(text, file)
    c.only_keys(data, (), SECTIONS)
    server = _server(c, data.get("server", {}), env)
    routing = _routing(c, data.get("routing", {}))
    history = _history(c, data.get("history", {}))
    providers = {
        name: _provider(c, name, raw, env)
        for name, raw in c.table(data.get("providers", {}), ("providers",)).items()
    }
    models = {
        mid: _model(c, mid, raw, providers)
        for mid, raw in c.table(data.get("models", {}), ("models",)).items()
    }
    for mid, mapping in models.items():
        for fallback in mapping.fallbacks:
            prefix = fallback.split("/", 1)[0] if "/" in fallback else None
            if fallback not in models and not (routing.provider_prefix and prefix in providers):
                raise c.fail(
                    ("models", mid, "fallbacks"),
                    f"names {fallback!r}, which is not a configured model id",
                )
    return Config(
        server=server,
        routing=routing,
        history=history,
        providers=_frozen(providers),
        models=_frozen(models),
        source=file,
    )


def load_file(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and parse ``path``. A missing or unreadable file is a ConfigError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found (run `trayproxy serve` once to create a template)", file=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from None
    return parse(text, file=str(path), environ=environ)


def permission_warning(path: Path) -> str | None:
    """A warning when a config file that may hold keys is readable by other users."""
    if os.name != "posix":
        return None
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        return (
            f"{path} is readable by other users (mode {mode:o}); if it holds keys, run "
            f"chmod 600 {path}"
        )
    return None


def template_text() -> str:
    """The commented first-run config."""
    return resources.files("trayproxy.config").joinpath("template.toml").read_text(encoding="utf-8")


def ensure_config_file(path: Path) -> bool:
    """Write the template to ``path`` (mode 0600) unless it exists. True if it was created."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(template_text())
    return True
