"""TOML text -> a validated, frozen :class:`~trayproxy.config.model.Config`.

Every error is a :class:`ConfigError` naming the file, the line (when it can be found) and
the key path. :func:`read` is a pure function of the text; :func:`parse` then has ``keys``,
the one module that touches the environment or the keychain, resolve the key references.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from trayproxy.config import keys
from trayproxy.config.checks import Checker, kind
from trayproxy.config.keys import KeyRefError
from trayproxy.config.model import (
    CAPABILITIES,
    CLAUDE_CODE_KEYS,
    HISTORY_KEYS,
    MODEL_KEYS,
    PROVIDER_KEYS,
    ROUTING_KEYS,
    SECTIONS,
    SERVER_KEYS,
    ClaudeCodeSettings,
    Config,
    ConfigError,
    HistorySettings,
    KeyRef,
    ModelMapping,
    Provider,
    RoutingSettings,
    ServerSettings,
    _frozen,
    model_id_problem,
)
from trayproxy.providers import profiles
from trayproxy.providers.profiles import Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


# ---------------------------------------------------------------- sections


def _server(c: Checker, raw: Any) -> ServerSettings:
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
        token = keys.reference((token_raw or "").strip(), (*path, "token"))
    except KeyRefError as exc:
        raise c.fail((*path, "token"), str(exc)) from None
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


def _string_list(c: Checker, t: dict[str, Any], path: tuple[str, ...], key: str) -> list[str]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise c.fail((*path, key), "must be a list of non-empty strings")
    return [v.strip() for v in value]


def _routing(c: Checker, raw: Any) -> RoutingSettings:
    path = ("routing",)
    t = c.table(raw, path)
    c.only_keys(t, path, ROUTING_KEYS)
    prefix = c.boolean(t, path, "provider_prefix")
    return RoutingSettings(provider_prefix=True if prefix is None else prefix)


def _history(c: Checker, raw: Any) -> HistorySettings:
    path = ("history",)
    t = c.table(raw, path)
    c.only_keys(t, path, HISTORY_KEYS)
    days = c.number(t, path, "days", integer=True, low=1, high=3650)
    return HistorySettings(days=30 if days is None else days)


def _base_url(c: Checker, path: tuple[str, ...], value: str | None) -> str:
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


def _provider(c: Checker, name: str, raw: Any) -> Provider:
    path = ("providers", name)
    if not _NAME.fullmatch(name):
        raise c.fail(path, "provider names use letters, digits, '_', '-' and '.' only")
    t = c.table(raw, path)
    c.only_keys(t, path, PROVIDER_KEYS)
    base_url = _base_url(c, (*path, "base_url"), c.string(t, path, "base_url"))
    key_raw = c.string(t, path, "api_key")
    try:
        if key_raw is None:
            api_key = keys.automatic(name, (*path, "api_key"))
        else:
            api_key = keys.reference(key_raw.strip(), (*path, "api_key"))
            meant = keys.looks_meant_as_reference(key_raw.strip())
            if meant is not None:
                c.warn(
                    (*path, "api_key"),
                    f'looks like the name of a variable, not a key: write "{meant}" to read '
                    "it from the environment",
                )
    except KeyRefError as exc:
        raise c.fail((*path, "api_key"), str(exc)) from None
    headers: list[tuple[str, KeyRef]] = []
    if "headers" in t:
        hpath = (*path, "headers")
        for hname, hvalue in c.table(t["headers"], hpath).items():
            if not _HEADER_NAME.fullmatch(hname) or hname.lower() in _RESERVED_HEADERS:
                raise c.fail((*hpath, hname), "is not a header trayproxy can set")
            if not isinstance(hvalue, str):
                raise c.fail((*hpath, hname), f"must be a string, not {kind(hvalue)}")
            if any(ord(ch) < 32 or ch == "\x7f" for ch in hvalue):
                raise c.fail((*hpath, hname), "must not contain control characters")
            try:
                ref = keys.reference(hvalue.strip(), (*hpath, hname))
            except KeyRefError as exc:
                raise c.fail((*hpath, hname), str(exc)) from None
            if ref.source == "none":
                raise c.fail((*hpath, hname), "must not be empty")
            headers.append((hname, ref))
    connect = c.number(t, path, "connect_timeout", integer=False, low=0.1, high=3600)
    first = c.number(t, path, "first_byte_timeout", integer=False, low=0.1, high=86400)
    idle = c.number(t, path, "idle_timeout", integer=False, low=0.1, high=86400)
    profile, inferred = _profile(c, path, t, base_url)
    timeouts = {"connect_timeout": connect, "first_byte_timeout": first, "idle_timeout": idle}
    return Provider(  # what config.toml leaves out takes the dataclass's default
        name=name,
        base_url=base_url,
        api_key=api_key,
        headers=tuple(headers),
        profile=profile,
        profile_inferred=inferred,
        **{key: float(value) for key, value in timeouts.items() if value is not None},
    )


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _names(
    c: Checker, t: dict[str, Any], path: tuple[str, ...], key: str
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
    c: Checker, path: tuple[str, ...], t: dict[str, Any], base_url: str
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
    choices = {"messages_auth": profiles.MESSAGES_AUTH, "reasoning_request": profiles.REASONING}
    chosen = {key: c.string(t, path, key) for key in choices}
    for key, value in chosen.items():
        if value is not None and value not in choices[key]:
            raise c.fail(
                (*path, key), "must be one of " + ", ".join(f'"{a}"' for a in choices[key])
            )
    bases = {key: c.string(t, path, key) for key in ("messages_base", "responses_base")}
    for key, base in bases.items():
        if base and not base.startswith(("http://", "https://", "{base}", "{origin}")):
            raise c.fail(
                (*path, key),
                'must be a URL (http:// or https://), or start with "{base}" or "{origin}"; '
                '"" to translate such requests to Chat Completions',
            )
    profile = profiles.with_overrides(
        profiles.BUILTIN[name],
        **bases,
        **chosen,
        rename_params=renames,
        drop_params=_names(c, t, path, "drop_params"),
        drop_message_fields=_names(c, t, path, "drop_message_fields"),
        include_usage=c.boolean(t, path, "include_usage"),
        short_tool_call_ids=c.boolean(t, path, "short_tool_call_ids"),
        restore_reasoning=restore,
    )
    return profile, inferred


def _model(c: Checker, model_id: str, raw: Any, providers: Mapping[str, Provider]) -> ModelMapping:
    path = ("models", model_id)
    problem = model_id_problem(model_id)
    if problem is not None:
        raise c.fail(path, f"a model id {problem}")
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


def _claude_code(c: Checker, raw: Any, models: Mapping[str, ModelMapping]) -> ClaudeCodeSettings:
    path = ("claude_code",)
    t = c.table(raw, path)
    c.only_keys(t, path, CLAUDE_CODE_KEYS)
    chosen = {}
    for key in ("model", "small_model"):
        value = c.string(t, path, key) or ""
        if value and value not in models:
            raise c.fail((*path, key), f"names {value!r}, which is not a configured model id")
        chosen[key] = value
    return ClaudeCodeSettings(**chosen)


def parse(text: str, *, file: str = "", environ: Mapping[str, str] | None = None) -> Config:
    """:func:`read` the text, then resolve its key references (``keys.resolve``: from
    ``environ`` when given, else the process's environment, and the keychain)."""
    return keys.resolve(read(text, file=file), text, environ)


def read(text: str, *, file: str = "") -> Config:
    """Parse and validate config text, key references left unresolved: a pure function.
    Raises :class:`ConfigError`."""
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
    c = Checker(text, file)
    c.only_keys(data, (), SECTIONS)
    server = _server(c, data.get("server", {}))
    routing = _routing(c, data.get("routing", {}))
    history = _history(c, data.get("history", {}))
    providers = {
        name: _provider(c, name, raw)
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
        claude_code=_claude_code(c, data.get("claude_code", {}), models),
        providers=_frozen(providers),
        models=_frozen(models),
        source=file,
        warnings=tuple(c.warnings),
    )
