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
            p.api_key.describe(),
            p.profile.name + (" (from URL)" if p.profile_inferred else ""),
        )
        for n, p in sorted(config.providers.items())
    ]
    lines.append("\n" + render_table(("PROVIDER", "BASE URL", "KEY", "PROFILE"), prow))
    missing = [
        n
        for n, p in sorted(config.providers.items())
        if p.api_key.missing or any(ref.missing for _, ref in p.headers)
    ]
    if missing:
        lines.append(
            "\nProviders without a key (requests to them will fail): " + ", ".join(missing)
        )
    return "\n".join(lines)


def describe_keys(config: Config) -> str:
    """Each provider and where its key comes from (never the key)."""
    rows = [(name, p.api_key.describe()) for name, p in sorted(config.providers.items())]
    return render_table(("PROVIDER", "KEY"), rows)
