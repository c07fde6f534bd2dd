"""A host as it goes in a URL."""

from __future__ import annotations

import ipaddress


def format_host(host: str) -> str:
    """``::1`` as ``[::1]`` (IPv6 addresses are bracketed in URLs), anything else as is."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host
