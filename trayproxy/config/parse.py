"""TOML text -> a validated, frozen :class:`~trayproxy.config.model.Config`.

Every error is a :class:`ConfigError` naming the file, the line (when it can be found) and
the key path. :func:`read` is a pure function of the text; :func:`parse` then has ``keys``,
the one module that touches the environment or the keychain, resolve the key references.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from trayproxy.config import keys
from trayproxy.config.checks import Checker
from trayproxy.config.keys import KeyRefError
from trayproxy.config.model import (
    CAPABILITIES,
    CLAUDE_CODE_KEYS,
    COSTS_KEYS,
    HISTORY_KEYS,
    MODEL_KEYS,
    ROUTING_KEYS,
    SECTIONS,
    SERVER_KEYS,
    ClaudeCodeSettings,
    Config,
    ConfigError,
    CostSettings,
    HistorySettings,
    ModelMapping,
    Provider,
    RoutingSettings,
    ServerSettings,
    _frozen,
    model_id_problem,
)
from trayproxy.config.parse_provider import price, provider

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


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


def _costs(c: Checker, raw: Any) -> CostSettings:
    path = ("costs",)
    t = c.table(raw, path)
    c.only_keys(t, path, COSTS_KEYS)
    budget = c.number(t, path, "daily_budget", integer=False, low=0.01, high=1_000_000)
    return CostSettings(daily_budget=None if budget is None else float(budget))


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
    long_context = (c.string(t, path, "long_context") or "").strip()
    if long_context == model_id:
        raise c.fail((*path, "long_context"), "must name another model id, not this one")
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
        price=price(c, t, path),
        long_context=long_context,
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
        name: provider(c, name, raw)
        for name, raw in c.table(data.get("providers", {}), ("providers",)).items()
    }
    models = {
        mid: _model(c, mid, raw, providers)
        for mid, raw in c.table(data.get("models", {}), ("models",)).items()
    }
    for mid, mapping in models.items():
        named = [("fallbacks", f) for f in mapping.fallbacks]
        named += [("long_context", mapping.long_context)] if mapping.long_context else []
        for key, other in named:
            prefix = other.split("/", 1)[0] if "/" in other else None
            if other not in models and not (routing.provider_prefix and prefix in providers):
                raise c.fail(
                    ("models", mid, key), f"names {other!r}, which is not a configured model id"
                )
    return Config(
        server=server,
        routing=routing,
        history=history,
        claude_code=_claude_code(c, data.get("claude_code", {}), models),
        costs=_costs(c, data.get("costs", {})),
        providers=_frozen(providers),
        models=_frozen(models),
        source=file,
        warnings=tuple(c.warnings),
    )
