"""The desktop app's core, without GUI imports: ``App`` starts, reloads and stops the
``ProxyServer``, the config watcher and the history, and waits on the main thread for Quit
or a signal. What the user can ask of it is in ``commands`` (the menu's and the page's
table), what it tells the user in ``notices``.

Its methods are safe to call from any thread and never raise. The tray adapter only shows
menus and notices; a headless run uses the same object.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trayproxy.config.describe import needing_keys
from trayproxy.config.files import ensure_config_file, load_file, permission_warning
from trayproxy.config.model import DEFAULT_HOST, DEFAULT_PORT, Config, ConfigError
from trayproxy.config.paths import Paths
from trayproxy.core.hosts import format_host
from trayproxy.desktop import menu
from trayproxy.desktop.commands import Commands
from trayproxy.desktop.instance import InstanceLock
from trayproxy.desktop.notices import Notice, Notices
from trayproxy.desktop.watcher import ConfigWatcher
from trayproxy.records.history import History
from trayproxy.server.proxy_server import PortInUseError, ProxyServer, ServerError

log = logging.getLogger(__name__)


@dataclass
class Overrides:
    host: str | None = None
    port: int | None = None

    def apply(self, config: Config) -> Config:
        changes: dict[str, Any] = {}
        if self.host:
            changes["host"] = self.host
        if self.port is not None:
            changes["port"] = self.port
        return config.with_server(**changes) if changes else config


@dataclass
class App(Commands):
    config_path: Path
    paths: Paths
    overrides: Overrides = field(default_factory=Overrides)
    lock: InstanceLock | None = None
    # the desktop and autostart modules, imported when first used (``serve`` never needs
    # them: 1 MiB and 30 ms of start-up); tests swap in recorders
    desktop: Any = None
    autostart: Any = None

    def __post_init__(self) -> None:
        self.server: ProxyServer | None = None
        self.history: History | None = None
        self.error: str | None = None  # what stops us serving, for the status line
        self.error_detail: str | None = None  # the whole message
        self._reload_lock = threading.Lock()
        self._notices = Notices()
        # where trayproxy serves, or would: from the config last read (never read again just
        # to say it: that would mean the keychain on every status line)
        self._address: tuple[str, int] | None = None
        self._warned: set[str] = set()  # config warnings already said
        self._quit_listeners: list[Callable[[], None]] = []
        self._watcher: ConfigWatcher | None = None
        self._last_watch_error: str | None = None
        self.quit_requested = threading.Event()
        self._wake = threading.Event()
        self._reload_requested = threading.Event()

    def _desktop(self) -> Any:
        if self.desktop is None:
            from trayproxy.desktop import system

            self.desktop = system
        return self.desktop

    def _autostart(self) -> Any:
        if self.autostart is None:
            from trayproxy.desktop import autostart

            self.autostart = autostart
        return self.autostart

    # ------------------------------------------------------------ wiring

    def set_notifier(self, show: Callable[[Notice], None]) -> None:
        """Show notices with ``show`` from now on (a desktop notification)."""
        self._notices.set_notifier(show)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Called (from any thread) when the status or icon should change."""
        self._notices.add_listener(callback)

    def notify(self, notice: Notice) -> None:
        self._notices.notify(notice)

    def _changed(self) -> None:
        self._notices.changed()

    # ------------------------------------------------------------ state

    @property
    def serving(self) -> bool:
        return self.server is not None and self.server.running and self.error is None

    @property
    def base_url(self) -> str:
        if self.server is not None:
            return self.server.base_url
        return self.intended_url

    @property
    def intended_url(self) -> str:
        """Where trayproxy would serve, from the config last read (and overrides)."""
        if self._address is not None:
            host, port = self._address
        else:  # the config could never be read
            host, port = self.overrides.host or DEFAULT_HOST, self.overrides.port or DEFAULT_PORT
        return f"http://{format_host(host)}:{port}/v1"

    def _load(self) -> Config:
        """The config file, with the command line's overrides. Raises ConfigError. What it
        holds that is valid but probably not meant is said, once per wording."""
        config = self.overrides.apply(load_file(self.config_path))
        self._address = (config.server.host, config.server.port)
        for warning in config.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.notify(Notice("Check config.toml", warning, ok=False))
        return config

    @property
    def status(self) -> str:
        if self.serving:
            assert self.server is not None
            config = self.server.config
            n = len(config.models)
            status = f"Serving {self.server.base_url} · {n} model{'s' if n != 1 else ''}"
            lacking = sum(p.needs_key for p in config.providers.values())
            return status + (f" · {needing_keys(lacking)}" if lacking else "")
        return self.error or "Starting…"

    def menu(self) -> tuple[menu.Entry, ...]:
        return menu.menu_spec(self.status, serving=self.serving, autostart=self.autostart_on())

    def autostart_on(self) -> bool:
        try:
            return bool(self._autostart().enabled())
        except OSError:
            return False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the config and start serving. Failures become the error state, not exceptions."""
        created = False
        try:
            created = ensure_config_file(self.config_path)
        except OSError as exc:
            log.warning("cannot create %s: %s", self.config_path, exc)
        if created:
            self.notify(
                Notice(
                    "Config created",
                    f"A commented template is at {self.config_path}. Edit it to map your "
                    "model ids and set your provider keys.",
                )
            )
        try:
            config = self._load()
        except ConfigError as exc:
            self._set_error("Config error: " + _short(exc), notice=str(exc))
            config = None
        warning = permission_warning(self.config_path)
        if warning:
            self.notify(Notice("Config file permissions", warning, ok=False))
        if config is not None:
            self._start_server(config)
        self._start_watcher()
        self._changed()

    def _history(self, config: Config) -> History:
        if self.history is None:
            self.history = History(
                self.paths.data_dir / "history.db",
                days=config.history.days,
                on_problem=lambda message: self.notify(
                    Notice("Routing history", message, ok=False)
                ),
            )
            self.history.start()
        self.history.days = config.history.days
        return self.history

    def _start_server(self, config: Config) -> bool:
        history = self._history(config)
        server = ProxyServer(
            config,
            actions=self.page_actions(),
            autostart_enabled=self.autostart_on,
            history=history,
            notify=lambda title, text: self.notify(Notice(title, text, ok=False)),
        )
        server.logbook.subscribe(history.add)
        try:
            server.start()
        except PortInUseError:
            self._set_error(
                f"Port {config.server.port} is used by another program",
                notice=f"Port {config.server.port} on {config.server.host} is used by another "
                "program. Stop it, or change [server] port in the config and reload.",
            )
            return False
        except ServerError as exc:
            self._set_error(str(exc), notice=str(exc))
            return False
        self.server = server
        self.error = self.error_detail = None
        if self.lock is not None:
            self._publish()
        log.info("serving %s (%d models)", server.base_url, len(config.models))
        return True

    def _publish(self) -> None:
        if self.lock is not None and self.server is not None:
            try:
                self.lock.publish(self.server.base_url)
            except OSError as exc:
                log.warning("cannot record the running instance: %s", exc)

    def _set_error(self, status: str, *, notice: str) -> None:
        self.error = status
        self.error_detail = notice
        self.notify(Notice("trayproxy is not serving", notice, ok=False, level=logging.ERROR))
        self._changed()

    def _start_watcher(self) -> None:
        if self._watcher is not None:
            return
        self._watcher = ConfigWatcher(self.config_path, self._on_file_changed)
        self._watcher.start()

    def _on_file_changed(self) -> None:
        config = self.server.config if self.server else None
        if config is not None and not config.server.watch_config:
            return
        notice = self.reload(source="watch")
        if notice is not None:
            self.notify(notice)

    def shutdown(self, grace: float = 3.0) -> None:
        """Stop everything: in-flight streams get ``grace`` seconds."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.server is not None:
            self.server.stop(grace=grace)
        if self.history is not None:
            self.history.stop()  # writes what is queued
        if self.lock is not None:
            self.lock.release()

    # ------------------------------------------------------------ reload

    def reload(self, source: str = "menu") -> Notice | None:
        """Re-read the config. On error the old mappings keep serving."""
        with self._reload_lock:
            if self._watcher is not None:
                self._watcher.mark_current()
            try:
                new = self._load()
            except ConfigError as exc:
                message = f"{exc}\nThe old mappings keep serving."
                if self.server is None or not self.serving:
                    message = str(exc)
                if source == "watch" and message == self._last_watch_error:
                    return None  # already told the user about this one
                self._last_watch_error = message if source == "watch" else None
                return Notice("Config not reloaded", message, ok=False)
            self._last_watch_error = None
            if self.server is None:
                if not self._start_server(new):
                    return None  # _set_error told the user
                self._changed()
                return Notice("Started", self.status)
            old = self.server.config
            note = ""
            if (new.server.host, new.server.port) != (old.server.host, old.server.port):
                moved, note = self._rebind(new)
                if not moved:
                    new = new.with_server(host=old.server.host, port=old.server.port)
                    self._address = (old.server.host, old.server.port)
            self.server.apply(new)
            self._history(new)
            self.error = None
            summary = describe_change(old, new)
            self._changed()
            return Notice("Mappings reloaded", summary + (f"\n{note}" if note else ""))

    def _rebind(self, new: Config) -> tuple[bool, str]:
        """Move to the new address: (whether it moved, what to tell the user)."""
        assert self.server is not None
        old_url = self.server.base_url
        try:
            self.server.rebind(new.server.host, new.server.port, config=new)
        except ServerError as exc:
            return False, f"Still serving {old_url}: {exc}"
        self._publish()
        return True, f"Now serving {self.server.base_url}"

    def request_quit(self) -> None:
        self.quit_requested.set()
        self._wake.set()
        return None

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM request Quit; SIGHUP asks for a reload. Main thread only."""

        def on_stop(signum: int, _frame: object) -> None:
            self.quit_requested.set()
            self._wake.set()

        def on_hup(signum: int, _frame: object) -> None:
            self._reload_requested.set()
            self._wake.set()

        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGTERM, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)

    def wait(self) -> None:
        """Block the main thread until Quit, Ctrl-C or SIGTERM (see install_signal_handlers)."""
        while not self.quit_requested.is_set():
            self._wake.wait(0.5)  # short waits: signal handlers run between them on every OS
            self._wake.clear()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                notice = self.reload(source="signal")
                if notice is not None:
                    self.notify(notice)


def describe_change(old: Config, new: Config) -> str:
    """'20 models (+2, −1)' — what a reload changed."""
    before, after = set(old.models), set(new.models)
    added, removed = len(after - before), len(before - after)
    changed = sum(1 for k in after & before if old.models[k] != new.models[k])
    n = len(after)
    parts = []
    if added:
        parts.append(f"+{added}")
    if removed:
        parts.append(f"−{removed}")
    if changed:
        parts.append(f"{changed} changed")
    detail = ", ".join(parts) if parts else "no changes"
    return f"{n} model{'s' if n != 1 else ''} ({detail})"


def _short(exc: ConfigError) -> str:
    where = Path(exc.file).name if exc.file else "config"
    if exc.line:
        where += f":{exc.line}"
    return f"{where} {exc.key}".strip()
