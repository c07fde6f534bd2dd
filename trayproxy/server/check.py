"""``trayproxy check``: the config read and every validation ``serve`` makes (an address
that serve would refuse included), then the routing table and where each key comes from."""

from __future__ import annotations

import sys

from trayproxy.clients.commands import load_or_say_why
from trayproxy.config.describe import describe_config
from trayproxy.config.files import permission_warning
from trayproxy.config.paths import config_path
from trayproxy.core.hosts import format_host
from trayproxy.server.proxy_server import ServerError, check_exposure


def cmd_check(override: str | None) -> int:
    path = config_path(override)
    config = load_or_say_why(path)
    if config is None:
        return 1
    try:
        check_exposure(config.server.host, config)  # what `serve` would refuse
    except ServerError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 1
    host = format_host(config.server.host)
    print(f"{path}: valid")
    for warning in (permission_warning(path), *config.warnings):
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    print(f"Serves http://{host}:{config.server.port}/v1 with {len(config.models)} models.\n")
    print(describe_config(config))
    return 0
