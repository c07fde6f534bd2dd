"""What the user can ask of the app, from the tray menu and the page (``menu.TABLE``): each
returns a :class:`Notice` for the user, or None when there is nothing to say. Mixed into
``App``, whose state it reads.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trayproxy.config.files import ensure_config_file
from trayproxy.config.paths import Paths
from trayproxy.desktop import menu
from trayproxy.desktop.notices import Notice
from trayproxy.server.proxy_server import ProxyServer

log = logging.getLogger(__name__)


class Commands:
    # what App provides
    config_path: Path
    paths: Paths
    server: ProxyServer | None
    error: str | None
    quit_requested: threading.Event
    _quit_listeners: list[Callable[[], None]]

    serving: bool
    base_url: str
    intended_url: str

    def notify(self, notice: Notice) -> None: ...  # pragma: no cover - App's
    def reload(self, source: str = "menu") -> Notice | None: ...  # pragma: no cover - App's
    def request_quit(self) -> None: ...  # pragma: no cover - App's
    def _changed(self) -> None: ...  # pragma: no cover - App's
    def _desktop(self) -> Any: ...  # pragma: no cover - App's
    def _autostart(self) -> Any: ...  # pragma: no cover - App's

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

    def copy_claude_code(self) -> Notice:
        """The shell lines that point Claude Code here, on the clipboard."""
        if not self.serving:
            return Notice("Not serving", self.error or "trayproxy is not serving", ok=False)
        assert self.server is not None
        from trayproxy.clients import claude_code

        text = claude_code.shell(self.server.config, self.server.root_url)
        ok, why = self._desktop().copy_text(text)
        if ok:
            return Notice(
                "Copied",
                "Claude Code's settings are on the clipboard: paste them in a terminal, then "
                "run claude.",
            )
        return Notice("Could not copy Claude Code's settings", why, ok=False)

    def copy_codex_config(self) -> Notice:
        """The ~/.codex/config.toml block for every mapped id, on the clipboard."""
        if not self.serving:
            return Notice("Not serving", self.error or "trayproxy is not serving", ok=False)
        assert self.server is not None
        from trayproxy.clients import codex_config

        text = codex_config.render(self.server.config, self.server.base_url)
        ok, why = self._desktop().copy_text(text)
        if ok:
            return Notice(
                "Copied",
                "A Codex config is on the clipboard: paste it into ~/.codex/config.toml, then "
                "run codex --profile <id>.",
            )
        return Notice("Could not copy the Codex config", why, ok=False)

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
