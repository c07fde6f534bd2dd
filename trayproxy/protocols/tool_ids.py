"""Tool-call ids across protocols. Anthropic's clients accept only ``^[a-zA-Z0-9_-]+$`` and
want each id once in a conversation; providers use other characters and repeat them (Kimi
numbers its calls per turn: ``functions.read_file:0`` every time) and need their own ids back
in the next turn. An id that does not fit is carried as ``tpid_`` + its base64url + ``_`` +
8 random hex digits: unique, and reversible with no memory, so it survives restarts."""

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
    return f"{_MARK}{encoded.decode('ascii').rstrip('=')}_{secrets.token_hex(4)}"


def for_provider(client_id: object) -> str:
    """The provider's own id for an id a client sends back (unchanged when not ours)."""
    if not isinstance(client_id, str):
        return ""
    if not client_id.startswith(_MARK):
        return client_id
    body = client_id[len(_MARK) : -len("_12345678")]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return client_id
