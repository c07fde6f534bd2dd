"""Tool-call ids across protocols. Anthropic's clients accept only ``^[a-zA-Z0-9_-]+$``;
providers use other characters (Kimi: ``functions.read_file:0``) and need their own ids back in
the next turn. An id that does not fit is carried as ``tpid_`` + its base64url: reversible
with no memory, so it survives restarts and reloads."""

from __future__ import annotations

import base64
import binascii
import re
import secrets

_FITS = re.compile(r"[a-zA-Z0-9_-]+")
_MARK = "tpid_"


def for_client(provider_id: object) -> str:
    """The id an Anthropic client gets for a provider's tool call."""
    if not isinstance(provider_id, str) or not provider_id:
        return "toolu_tp" + secrets.token_hex(12)  # the provider gave none: make one
    if _FITS.fullmatch(provider_id) and not provider_id.startswith(_MARK):
        return provider_id
    encoded = base64.urlsafe_b64encode(provider_id.encode("utf-8", "surrogatepass"))
    return _MARK + encoded.decode("ascii").rstrip("=")


def for_provider(client_id: object) -> str:
    """The provider's own id for an id a client sends back (unchanged when not ours)."""
    if not isinstance(client_id, str):
        return ""
    if not client_id.startswith(_MARK):
        return client_id
    body = client_id[len(_MARK) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return client_id
