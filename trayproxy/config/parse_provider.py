"""One ``[providers.<name>]`` table -> a :class:`Provider`: its URL, its key or keys, its
headers, timeouts, keep-alive, price and profile overrides. Pure, like ``parse``."""

from __future__ import annotations

import difflib
import re
from typing import Any
from urllib.parse import urlsplit

from trayproxy.config import keys
from trayproxy.config.checks import Checker, kind
from trayproxy.config.keys import KeyRefError
from trayproxy.config.model import (
    KEY_STRATEGIES,
    PRICE_KEYS,
    PROVIDER_KEYS,
    KeyRef,
    Provider,
    ProviderKey,
    key_label,
)
from trayproxy.core.prices import Price
from trayproxy.providers import profiles
from trayproxy.providers.profiles import Profile

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_LABEL = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


def price(c: Checker, t: dict[str, Any], path: tuple[str, ...]) -> Price | None:
    """A ``price = { input = 0.6, output = 2.5, cached_input = 0.15 }`` table (dollars per
    million tokens), or None."""
    if "price" not in t:
        return None
    ppath = (*path, "price")
    table = c.table(t["price"], ppath)
    c.only_keys(table, ppath, PRICE_KEYS)
    values = {
        key: c.number(table, ppath, key, integer=False, low=0, high=1_000_000) for key in PRICE_KEYS
    }
    for key in ("input", "output"):
        if values[key] is None:
            raise c.fail(
                (*ppath, key),
                "is required: dollars per million tokens, like "
                "price = { input = 0.60, output = 2.50 } (0 for a free model)",
            )
    cached = values["cached_input"]
    return Price(
        float(values["input"]),
        float(values["output"]),
        None if cached is None else float(cached),
    )


def _api_keys(c: Checker, t: dict[str, Any], path: tuple[str, ...]) -> tuple[ProviderKey, ...]:
    """``api_keys = ["env:A", "keyring:b", {key = "...", label = "work"}]``."""
    kpath = (*path, "api_keys")
    raw = t["api_keys"]
    if "api_key" in t:
        raise c.fail(kpath, "use api_key for one key or api_keys for several, not both")
    if not isinstance(raw, list) or not raw:
        raise c.fail(kpath, 'must be a list of keys, like ["env:GROQ_KEY_1", "keyring:groq-2"]')
    found: list[ProviderKey] = []
    for position, item in enumerate(raw, start=1):
        label = None
        if isinstance(item, dict):
            c.only_keys(item, kpath, frozenset({"key", "label"}))
            value, label = item.get("key"), item.get("label")
            if label is not None and (not isinstance(label, str) or not _LABEL.fullmatch(label)):
                raise c.fail(kpath, f"item {position}: label must be 1 to 64 printable characters")
        else:
            value = item
        if not isinstance(value, str) or not value.strip():
            raise c.fail(
                kpath,
                f"item {position} must be a key reference (env:NAME, keyring:NAME or the key) "
                'or a table like { key = "env:NAME", label = "work" }',
            )
        try:
            ref = keys.reference(value.strip(), kpath)
        except KeyRefError as exc:
            raise c.fail(kpath, f"item {position}: {exc}") from None
        found.append(ProviderKey(label or key_label(ref, position), ref))
    labels = [key.label for key in found]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise c.fail(
            kpath,
            f"two keys are labelled {twice[0]!r}: give each a label of its own "
            '({ key = "...", label = "..." })',
        )
    return tuple(found)


def _single_key(c: Checker, name: str, t: dict[str, Any], path: tuple[str, ...]) -> KeyRef:
    key_raw = c.string(t, path, "api_key")
    try:
        if key_raw is None:
            return keys.automatic(name, (*path, "api_key"))
        api_key = keys.reference(key_raw.strip(), (*path, "api_key"))
    except KeyRefError as exc:
        raise c.fail((*path, "api_key"), str(exc)) from None
    meant = keys.looks_meant_as_reference(key_raw.strip())
    if meant is not None:
        c.warn(
            (*path, "api_key"),
            f'looks like the name of a variable, not a key: write "{meant}" to read '
            "it from the environment",
        )
    return api_key


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


def provider(c: Checker, name: str, raw: Any) -> Provider:
    path = ("providers", name)
    if not NAME.fullmatch(name):
        raise c.fail(path, "provider names use letters, digits, '_', '-' and '.' only")
    t = c.table(raw, path)
    c.only_keys(t, path, PROVIDER_KEYS)
    base_url = _base_url(c, (*path, "base_url"), c.string(t, path, "base_url"))
    if "api_keys" in t:
        api_keys = _api_keys(c, t, path)
        api_key = api_keys[0].ref
    else:
        api_keys, api_key = (), _single_key(c, name, t, path)
    strategy = c.string(t, path, "key_strategy")
    if strategy is not None and strategy not in KEY_STRATEGIES:
        raise c.fail(
            (*path, "key_strategy"), "must be one of " + ", ".join(f'"{s}"' for s in KEY_STRATEGIES)
        )
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
    keepalive = c.number(t, path, "keepalive_seconds", integer=False, low=0, high=3600)
    profile, inferred = _profile(c, path, t, base_url)
    timeouts = {
        "connect_timeout": connect,
        "first_byte_timeout": first,
        "idle_timeout": idle,
        "keepalive_seconds": keepalive,
    }
    return Provider(  # what config.toml leaves out takes the dataclass's default
        name=name,
        base_url=base_url,
        api_key=api_key,
        api_keys=api_keys,
        key_strategy=strategy or "order",
        headers=tuple(headers),
        price=price(c, t, path),
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
        price_list=c.boolean(t, path, "price_list"),
    )
    return profile, inferred
