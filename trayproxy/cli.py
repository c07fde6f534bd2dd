"""Command line: ``trayproxy [serve|check|config-path]``. The only place logging is set up."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from trayproxy import __version__
from trayproxy.clients.commands import (
    claude_code_command,
    codex_command,
    continue_config_command,
    doctor_command,
)
from trayproxy.config.describe import needing_keys
from trayproxy.config.model import Config
from trayproxy.config.paths import app_paths, config_path
from trayproxy.desktop.app import App, Overrides
from trayproxy.desktop.instance import InstanceLock
from trayproxy.records.logfile import (
    BatchedFileHandler,
    BatchedStreamHandler,
    CachedTimeFormatter,
    lighten_records,
    route_request_lines,
)

log = logging.getLogger("trayproxy")

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
COMMANDS = (
    "serve",
    "check",
    "config-path",
    "logs",
    "usage",
    "install-desktop",
    "autostart",
    "continue-config",
    "claude-code",
    "codex",
    "doctor",
    "status",
    "stop",
    "key",
)


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
            help=f"config file (default: {config_path(None)})",
            default=None,
        )

    serve = sub.add_parser("serve", help="run the proxy without a tray icon until Ctrl-C")
    parser.epilog = "Without a COMMAND, trayproxy starts the tray app (it accepts serve's options)."
    with_config(serve)
    serve.add_argument("--host", help="address to listen on (default: from config, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: from config, 8000)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log debug details")

    check = sub.add_parser("check", help="validate the config and print the routing table")
    with_config(check)

    path = sub.add_parser("config-path", help="print where the config file is")
    with_config(path)

    logs = sub.add_parser("logs", help="print recent requests from the routing history")
    logs.add_argument(
        "-n",
        "--lines",
        type=_count(1, 100_000),
        default=20,
        metavar="N",
        help="how many, 1 to 100000 (default: %(default)s)",
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new requests until Ctrl-C"
    )

    def client_setup(name: str, what: str, file: str) -> None:
        p = sub.add_parser(name, help=f"print {what} for every mapped id")
        with_config(p)
        p.add_argument(
            "--merge",
            action="store_true",
            help=f"add the entries to {file} (a backup is made; your own entries stay)",
        )
        p.add_argument("--file", metavar="PATH", help=f"the file to merge into (default: {file})")

    client_setup(
        "continue-config", "a Continue config.yaml models block", "~/.continue/config.yaml"
    )
    client_setup("codex", "a Codex config.toml provider and profiles", "~/.codex/config.toml")

    claude = sub.add_parser(
        "claude-code", help="print the environment that points Claude Code at trayproxy"
    )
    with_config(claude)
    claude.add_argument(
        "--settings",
        action="store_true",
        help="print it as the env block of ~/.claude/settings.json instead",
    )

    doctor = sub.add_parser(
        "doctor", help="ask each provider for its models; flag missing models and bad keys"
    )
    with_config(doctor)
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument(
        "--timeout",
        type=_seconds,
        default=15.0,
        metavar="S",
        help="seconds to wait for each provider (default: %(default)s)",
    )

    desktop = sub.add_parser(
        "install-desktop", help="add trayproxy to the applications menu (Linux, this user)"
    )
    desktop.add_argument("--uninstall", action="store_true", help="remove it again")

    login = sub.add_parser("autostart", help="start trayproxy at login: on, off or status")
    login.add_argument("state", choices=("on", "off", "status"), nargs="?", default="status")

    status = sub.add_parser(
        "status", help="whether trayproxy runs: its URL, pid, models, providers without a key"
    )
    with_config(status)
    stop = sub.add_parser("stop", help="ask the running trayproxy to quit (streams get 3 s)")
    with_config(stop)

    key = sub.add_parser(
        "key", help="store a provider's key in the OS keychain, list where keys come from"
    )
    with_config(key)
    key.add_argument("action", choices=("set", "list", "delete"))
    key.add_argument("provider", nargs="?", help="the provider's name, as in config.toml")

    usage = sub.add_parser("usage", help="requests, tokens, cost and latency per model and day")
    usage.add_argument(
        "--days",
        type=_count(1, 3650),
        default=7,
        metavar="N",
        help="the period, in days, 1 to 3650 (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `trayproxy check | head -1`: the reader has gone, so the rest goes nowhere, quietly
        # (stdout is pointed at devnull so that the interpreter's final flush does not fail)
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    unknown = _unknown_command(args_list)
    if unknown is not None:
        parser.error(
            f"unknown command {unknown!r}; the commands are: {', '.join(COMMANDS)} "
            "(or none, for the tray app)"
        )
    index = _command_index(args_list)
    with_tray = index is None and not {"-h", "--help", "--version"} & set(args_list)
    if with_tray:
        # Bare `trayproxy [options]`: the tray app, with serve's options.
        args_list.insert(0, "serve")
    elif index:
        args_list.insert(0, args_list.pop(index))  # `trayproxy --config X check`
    args = parser.parse_args(args_list)
    command = args.command
    if command == "check":
        from trayproxy.server.check import cmd_check

        return cmd_check(args.config)
    if command == "config-path":
        print(config_path(args.config))
        return 0
    if command == "logs":
        from trayproxy.records.terminal import cmd_logs

        return cmd_logs(app_paths().data_dir / "history.db", args.lines, args.follow)
    if command == "continue-config":
        return continue_config_command(args.config, args.merge, args.file)
    if command == "codex":
        return codex_command(args.config, args.merge, args.file)
    if command == "claude-code":
        return claude_code_command(args.config, args.settings)
    if command == "doctor":
        return doctor_command(args.config, args.json, args.timeout)
    if command == "install-desktop":
        from trayproxy.desktop.setup import install_desktop_command

        return install_desktop_command(args.uninstall)
    if command == "autostart":
        from trayproxy.desktop.setup import autostart_command

        return autostart_command(args.state)
    if command == "key":
        from trayproxy.desktop.setup import key_command

        if args.action != "list" and not args.provider:
            parser.error(f"key {args.action} needs a PROVIDER (the name in config.toml)")
        return key_command(args.action, args.provider, config_path(args.config))
    if command in ("status", "stop"):
        from trayproxy.desktop import control

        run = control.status if command == "status" else control.stop
        return run(app_paths().state_dir, config_path(args.config))
    if command == "usage":
        from trayproxy.records.terminal import cmd_usage

        return cmd_usage(app_paths().data_dir / "history.db", args.days, config_path())
    return cmd_serve(args, with_tray=with_tray)


_VALUE_OPTIONS = ("--config", "--host", "--port")


def _command_index(args: list[str]) -> int | None:
    """Where the COMMAND is in ``args`` (options may come before it), or None."""
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True  # its value follows
        elif not arg.startswith("-"):
            return i if arg in COMMANDS else None
    return None


def _unknown_command(args: list[str]) -> str | None:
    """The first word that is neither an option, an option's value nor a command."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return None if arg in COMMANDS else arg
    return None


def _count(low: int, high: int) -> Callable[[str], int]:
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value

    return count


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600, not {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, not {value}")
    return value


# ---------------------------------------------------------------- check


# ---------------------------------------------------------------- serve and the tray


def setup_logging(verbose: bool = False, log_dir: Path | None = None) -> None:
    """Log to stderr (when there is one) and to a rotating file in the log folder, in
    batches written off the request path (records/logfile.py)."""
    lighten_records()
    fmt = CachedTimeFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = []
    if sys.stderr is not None:  # None in a windowed Windows build
        stream = BatchedStreamHandler()
        stream.setFormatter(fmt)
        handlers.append(stream)
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            file_handler = BatchedFileHandler(log_dir / "trayproxy.log", 2_000_000, 3)
            file_handler.setFormatter(
                CachedTimeFormatter("%(asctime)s %(levelname)-7s %(name)s %(message)s")
            )
            handlers.append(file_handler)
        except OSError as exc:
            print(f"warning: cannot write logs to {log_dir}: {exc}", file=sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = handlers
    route_request_lines(handlers)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # pystray logs tracebacks for conditions trayproxy reports itself in plain words (such
    # as "no tray host yet"); keep them for -v
    logging.getLogger("pystray").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def cmd_serve(args: argparse.Namespace, *, with_tray: bool) -> int:
    paths = app_paths()
    setup_logging(getattr(args, "verbose", False), paths.log_dir)
    lock = InstanceLock(paths.state_dir)
    if not lock.acquire():
        url = lock.running_info().get("url")
        where = f" at {url}" if url else ""
        print(f"trayproxy is already running{where}.")
        if with_tray and url and not _has_terminal():
            # double-clicked again: show the running one instead of doing nothing visible
            import webbrowser

            webbrowser.open(url.removesuffix("/v1") + "/_trayproxy/")
        return 0
    app = App(config_path(args.config), paths, Overrides(host=args.host, port=args.port), lock=lock)
    app.install_signal_handlers()
    try:
        app.start()
        # what start-up made lives as long as the process: keep the collector off it, so
        # that its full passes stay short while requests flow
        gc.freeze()
        if app.server is not None and app.server.host not in LOOPBACK:
            log.warning(
                "listening on %s: other machines on the network can use your provider keys",
                app.server.host,
            )
        if with_tray and not app.quit_requested.is_set():
            from trayproxy.desktop import tray

            if tray.run(app):
                return 0
        if app.server is None:  # why is in the log (and the console) once already
            return 1
        _warn_missing_keys(app.server.config)
        log.info("trayproxy %s running without a tray icon - Ctrl-C to stop", __version__)
        app.wait()
        return 0
    finally:
        log.info("stopping (in-flight requests get up to 3 s)")
        app.shutdown(grace=3.0)


def _has_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def _warn_missing_keys(config: Config) -> None:
    missing = sorted(n for n, p in config.providers.items() if p.needs_key)
    if missing:
        log.warning(
            "%s: %s (store one with: trayproxy key set PROVIDER)",
            needing_keys(len(missing)),
            ", ".join(missing),
        )
