"""The desktop app's core: what the tray menu and the page can do. No GUI imports.

``App`` owns the ``ProxyServer`` and the config watcher. Its methods are safe to call from
any thread, never raise, and return a ``Notice`` for the user. The tray adapter only shows
menus and notices; a headless run uses the same object.
"""

from __future__ import annotations

import logging
import signal
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trayproxy.config.files import ensure_config_file, load_file, permission_warning
from trayproxy.config.model import Config, ConfigError
from trayproxy.config.paths import Paths
from trayproxy.desktop import menu
from trayproxy.desktop.instance import InstanceLock
from trayproxy.desktop.watcher import ConfigWatcher
from trayproxy.records.history import History
from trayproxy.server.proxy_server import PortInUseError, ProxyServer, ServerError, format_host

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    title: str
    message: str
    ok: bool = True


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
class App:
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
        self._listeners: list[Callable[[], None]] = []
        self._show: Callable[[Notice], None] | None = None
        self._early: list[Notice] = []
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
        """Show notices with ``show`` from now on (a desktop notification), and the ones
        from start-up now. Every notice is also logged, once, by ``notify``."""
        self._show = show
        early, self._early = self._early, []
        for notice in early:
            self._display(notice)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Called (from any thread) when the status or icon should change."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("a status listener failed")

    def notify(self, notice: Notice) -> None:
        self._log_notice(notice)
        if self._show is None:
            # the tray may not exist yet: shown when it does (a few, not forever)
            self._early = [*self._early[-9:], notice]
            return
        self._display(notice)

    def _display(self, notice: Notice) -> None:
        assert self._show is not None
        try:
            self._show(notice)
        except Exception:
            log.exception("showing a notification failed")

    @staticmethod
    def _log_notice(notice: Notice) -> None:
        level = logging.INFO if notice.ok else logging.WARNING
        log.log(level, "%s: %s", notice.title, notice.message)

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
        """Where trayproxy would serve, from the config (and overrides), while it cannot."""
        try:
            server = self.overrides.apply(load_file(self.config_path)).server
            host, port = server.host, server.port
        except ConfigError:
            host, port = self.overrides.host or "127.0.0.1", self.overrides.port or 8000
        return f"http://{format_host(host)}:{port}/v1"

    @property
    def status(self) -> str:
        if self.serving:
            assert self.server is not None
            n = len(self.server.config.models)
            return f"Serving {self.server.base_url} · {n} model{'s' if n != 1 else ''}"
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
                    f"Created a config template at {self.config_path}. Edit it to map your "
                    "model ids and set your provider keys.",
                )
            )
        try:
            config = self.overrides.apply(load_file(self.config_path))
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
        log.error("%s", notice)
        self.notify(Notice("trayproxy is not serving", notice, ok=False))
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

    # ------------------------------------------------------------ commands

    def dispatch(self, command: str) -> Notice | None:
        """Run a menu command (``menu.TABLE``). Never raises; the notice is also shown."""
        entry = menu.BY_NAME.get(command)
        handler: Callable[[], Notice | None] | None = (
            None if entry is None else getattr(self, entry.method)
        )
        if handler is None:
            notice: Notice | None = Notice("trayproxy", f"unknown command {command!r}", ok=False)
        else:
            try:
                notice = handler()
            except Exception as exc:
                log.exception("menu command %s failed", command)
                notice = Notice("trayproxy", f"{command} failed: {exc}", ok=False)
        if notice is not None:
            self.notify(notice)
        return notice

    def copy_base_url(self) -> Notice:
        if not self.serving:
            return Notice(
                "Not serving",
                f"{self.error or 'trayproxy is not serving'}; nothing answers at "
                f"{self.intended_url} yet.",
                ok=False,
            )
        url = self.base_url
        ok, why = self._desktop().copy_text(url)
        if ok:
            return Notice("Copied", f"{url} is on the clipboard")
        return Notice("Could not copy the base URL", f"{why}. The URL is {url}", ok=False)

    def copy_continue_config(self) -> Notice:
        """A Continue config.yaml with every mapped id, on the clipboard."""
        if not self.serving:
            return Notice("Not serving", self.error or "trayproxy is not serving", ok=False)
        assert self.server is not None
        from trayproxy.clients import continue_config

        text = continue_config.render(self.server.config, self.server.base_url)
        n = len(self.server.config.models)
        ok, why = self._desktop().copy_text(text)
        if ok:
            return Notice(
                "Copied",
                f"A Continue config with {n} models is on the clipboard: paste its models into "
                "~/.continue/config.yaml.",
            )
        return Notice("Could not copy the Continue config", why, ok=False)

    def reload(self, source: str = "menu") -> Notice | None:
        """Re-read the config. On error the old mappings keep serving."""
        with self._reload_lock:
            if self._watcher is not None:
                self._watcher.mark_current()
            try:
                new = self.overrides.apply(load_file(self.config_path))
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
                return Notice("Serving", self.status)
            old = self.server.config
            note = ""
            if (new.server.host, new.server.port) != (old.server.host, old.server.port):
                note = self._rebind(new)
                if note.startswith("Still"):
                    new = new.with_server(host=old.server.host, port=old.server.port)
            self.server.apply(new)
            self._history(new)
            self.error = None
            summary = describe_change(old, new)
            self._changed()
            return Notice("Mappings reloaded", summary + (f"\n{note}" if note else ""))

    def _rebind(self, new: Config) -> str:
        assert self.server is not None
        old_url = self.server.base_url
        try:
            self.server.rebind(new.server.host, new.server.port, config=new)
        except ServerError as exc:
            return f"Still serving {old_url}: {exc}"
        self._publish()
        return f"Now serving {self.server.base_url}"

    def open_routing_log(self) -> Notice | None:
        if self.server is None:
            return Notice("Not serving", self.error or "trayproxy is not serving", ok=False)
        ok, why = self._desktop().open_url(self.page_url())
        return None if ok else Notice("Could not open the routing log", why, ok=False)

    def page_url(self) -> str:
        """The routing-log page; with a client token, the token rides in the fragment,
        which browsers never send to a server or put in a referrer."""
        assert self.server is not None
        url = self.server.root_url + "/_trayproxy/"
        token = self.server.config.server.token.secret
        return url + "#token=" + urllib.parse.quote(token.reveal()) if token else url

    def open_config(self) -> Notice | None:
        try:
            ensure_config_file(self.config_path)
        except OSError as exc:
            return Notice("Could not create the config", str(exc), ok=False)
        ok, why = self._desktop().open_path(self.config_path, edit=True)
        return None if ok else Notice("Could not open the config file", why, ok=False)

    def open_log_folder(self) -> Notice | None:
        folder = self.paths.log_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return Notice("Could not create the log folder", str(exc), ok=False)
        ok, why = self._desktop().open_path(folder)
        return None if ok else Notice("Could not open the log folder", why, ok=False)

    def toggle_autostart(self) -> Notice:
        try:
            if self._autostart().enabled():
                where = self._autostart().disable()
                notice = Notice("Start at login", f"trayproxy will not start at login ({where}).")
            else:
                where = self._autostart().enable()
                notice = Notice("Start at login", f"trayproxy will start at login ({where}).")
        except OSError as exc:
            return Notice("Start at login", f"Could not change it: {exc}", ok=False)
        self._changed()
        return notice

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

    def page_actions(self) -> dict[str, Callable[[], tuple[bool, str]]]:
        """What the /_trayproxy/ page may ask for (copying is done by the browser itself)."""

        def wrap(fn: Callable[[], Notice | None], done: str) -> Callable[[], tuple[bool, str]]:
            def action() -> tuple[bool, str]:
                notice = fn()
                if notice is None:
                    return True, done
                return notice.ok, notice.message

            return action

        return {
            command.name: wrap(getattr(self, command.page_method or command.method), command.done)
            for command in menu.TABLE
            if command.done is not None
        }

    def quit_from_page(self) -> None:
        """Quit asked for by the page (the only way without a tray menu)."""
        self.request_quit()
        for callback in list(self._quit_listeners):
            callback()
        return None

    def add_quit_listener(self, callback: Callable[[], None]) -> None:
        """Called when something other than the tray asks to quit (the tray stops itself)."""
        self._quit_listeners.append(callback)


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
