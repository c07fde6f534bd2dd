"""A config as the terminal shows it (``trayproxy check``): the routing table, the providers
with their keys' sources (never values) and which of them have no key."""

from __future__ import annotations

from trayproxy.config.model import Config
from trayproxy.core.table import render_table


def describe_config(config: Config) -> str:
    rows = [
        (
            mid,
            m.provider,
            m.model,
            str(m.max_context_size or ""),
        )
        for mid, m in sorted(config.models.items())
    ]
    lines = [render_table(("MODEL ID", "PROVIDER", "UPSTREAM MODEL", "CONTEXT"), rows)]
    if config.routing.provider_prefix and config.providers:
        lines.append(
            "\nOther ids of the form <provider>/<model> go to that provider "
            "([routing] provider_prefix = true)."
        )
    prow = [
        (
            n,
            p.base_url,
            p.describe_key(),
            p.profile.name + (" (from URL)" if p.profile_inferred else ""),
        )
        for n, p in sorted(config.providers.items())
    ]
    lines.append("\n" + render_table(("PROVIDER", "BASE URL", "KEY", "PROFILE"), prow))
    missing = [n for n, p in sorted(config.providers.items()) if p.needs_key]
    if missing:
        lines.append(
            f"\n{needing_keys(len(missing))} (requests to them fail): "
            + ", ".join(missing)
            + "\nStore one with: trayproxy key set PROVIDER"
        )
    return "\n".join(lines)


def needing_keys(n: int) -> str:
    """ "1 provider needs a key", "2 providers need a key"."""
    return f"{n} provider needs a key" if n == 1 else f"{n} providers need a key"


def describe_keys(config: Config) -> str:
    """Each provider and where its key comes from (never the key)."""
    rows = [
        (name, p.describe_key(), "needs a key" if p.needs_key else "ok")
        for name, p in sorted(config.providers.items())
    ]
    return render_table(("PROVIDER", "KEY", "STATE"), rows)
