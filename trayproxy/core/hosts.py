"""Hosts: as one goes in a URL, and whether one is on this machine or its local network."""

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


LOCAL_SUFFIXES = (".localhost", ".local", ".lan", ".internal", ".home.arpa")


def is_local(host: str) -> bool:
    """``host`` is this machine or on its local network (loopback, private and link-local
    addresses, ``localhost``, mDNS ``.local`` names): a server there usually takes no key."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local
