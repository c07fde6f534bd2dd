"""Command line: ``trayproxy [serve|check|config-path]``. The only place logging is set up."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from trayproxy import __version__
from trayproxy.config import Config, ConfigError, ensure_config_file, load_file
from trayproxy.paths import config_path
from trayproxy.server import ProxyServer, ServerError, format_host
from trayproxy.table import render_table

log = logging.getLogger("trayproxy")

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
COMMANDS = ("serve", "check", "config-path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trayproxy",
        description="A local OpenAI-compatible gateway: one URL for every LLM provider.",
    )
    parser.add_argument("--version", action="version", version=f"trayproxy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            metavar="PATH",
            help="config file (default: %(default)s)",
            default=None,
        )

    serve = sub.add_parser("serve", help="run the proxy without a tray icon until Ctrl-C")
    with_config(serve)
    serve.add_argument("--host", help="address to listen on (default: from config, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: from config, 8000)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log debug details")

    check = sub.add_parser("check", help="validate the config and print the routing table")
    with_config(check)

    path = sub.add_parser("config-path", help="print where the config file is")
    with_config(path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not _names_a_command(args_list):
        # Bare `trayproxy [options]` will start the tray; until then it serves headless.
        args_list.insert(0, "serve")
    args = parser.parse_args(args_list)
    command = args.command
    if command == "check":
        return cmd_check(args.config)
    if command == "config-path":
        print(config_path(args.config))
        return 0
    return cmd_serve(args)


def _names_a_command(args: list[str]) -> bool:
    if any(a in ("-h", "--help", "--version") for a in args):
        return True
    first = next((a for a in args if not a.startswith("-")), None)
    return first in COMMANDS


# ---------------------------------------------------------------- check


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
    prow = [(n, p.base_url, p.api_key.describe()) for n, p in sorted(config.providers.items())]
    lines.append("\n" + render_table(("PROVIDER", "BASE URL", "KEY"), prow))
    missing = [n for n, p in sorted(config.providers.items()) if p.api_key.missing]
    if missing:
        lines.append(
            "\nProviders without a key (requests to them will fail): " + ", ".join(missing)
        )
    return "\n".join(lines)


def cmd_check(override: str | None) -> int:
    path = config_path(override)
    try:
        config = load_file(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    host = format_host(config.server.host)
    print(f"{path}: valid")
    print(f"Serves http://{host}:{config.server.port}/v1 with {len(config.models)} models.\n")
    print(describe_config(config))
    return 0


# ---------------------------------------------------------------- serve


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def load_startup_config(override: str | None) -> tuple[Path, Config]:
    """Create the template on first run, then load. Raises ConfigError."""
    path = config_path(override)
    if ensure_config_file(path):
        print(
            f"Created a config template at {path}\n"
            "Edit it to map your model ids and set your provider keys.",
            file=sys.stderr,
        )
    return path, load_file(path)


def cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "verbose", False))
    try:
        path, config = load_startup_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    changes = {}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    if changes:
        config = config.with_server(**changes)
    if config.server.host not in LOOPBACK:
        log.warning(
            "listening on %s: other machines on the network can use your provider keys",
            config.server.host,
        )
    server = ProxyServer(config)
    try:
        server.start()
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    missing = [n for n, p in config.providers.items() if p.api_key.missing]
    log.info(
        "trayproxy %s serving %s (%d models from %s) - Ctrl-C to stop",
        __version__,
        server.base_url,
        len(config.models),
        path,
    )
    if missing:
        log.warning("providers without a key: %s", ", ".join(sorted(missing)))

    stop = threading.Event()
    reload_requested = threading.Event()

    def on_stop(signum: int, _frame: object) -> None:
        stop.set()

    def on_hup(signum: int, _frame: object) -> None:
        reload_requested.set()
        stop.set()

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)
    while True:
        stop.wait()
        if reload_requested.is_set():
            reload_requested.clear()
            stop.clear()
            _reload(server, path, changes)
            continue
        break
    log.info("stopping (in-flight requests get up to 5 s)")
    server.stop(grace=5.0)
    return 0


def _reload(server: ProxyServer, path: Path, changes: dict[str, object]) -> None:
    try:
        config = load_file(path)
    except ConfigError as exc:
        log.error("reload failed, the old config keeps serving: %s", exc)
        return
    if changes:
        config = config.with_server(**changes)
    old = server.config
    if (config.server.host, config.server.port) != (old.server.host, old.server.port):
        log.warning("host/port changes need a restart; still serving %s", server.base_url)
        config = config.with_server(host=old.server.host, port=old.server.port)
    server.apply(config)
    log.info("reloaded %s: %d models", path, len(config.models))
