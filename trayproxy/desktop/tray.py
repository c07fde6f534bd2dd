"""The pystray adapter: the only module that imports pystray (it and ``desktop_entry`` use PIL).

It shows ``App.menu()`` and sends each click to ``App.dispatch`` on a worker thread (menu
callbacks never block the GUI and never raise). If no tray can be shown it says why, once,
and returns False so the caller keeps serving headless.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from trayproxy.desktop import menu
from trayproxy.desktop.app import App, Notice
from trayproxy.desktop.icons import ERROR_ICON, ICON, asset

log = logging.getLogger(__name__)

FULL_MENU_HINT = (
    "For the full tray menu on Linux install PyGObject (pip install PyGObject, or use a venv "
    "with --system-site-packages and the distro's python3-gi); on GNOME also enable the "
    "AppIndicator extension."
)


def unavailable_reason() -> str | None:
    """Why no tray can be shown here, when that is known without trying."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no graphical display (DISPLAY is not set)"
    return None


def _name_the_process() -> None:
    """A stable WM class ("trayproxy") for the GTK tray window, before pystray loads GTK."""
    try:
        import gi

        gi.require_version("GLib", "2.0")
        from gi.repository import GLib

        GLib.set_prgname("trayproxy")
        GLib.set_application_name("trayproxy")
    except Exception:
        pass


class Tray:
    def __init__(self, app: App, pystray: Any, image_module: Any) -> None:
        self.app = app
        self.pystray = pystray
        images = {}
        for name in (ICON, ERROR_ICON):
            with asset(name).open("rb") as fh:
                img = image_module.open(fh)
                img.load()
                images[name] = img
        self.images = images
        self.icon = pystray.Icon(
            "trayproxy", self._image(), "trayproxy", menu=pystray.Menu(self._items)
        )
        self.backend = _backend_name(self.icon)
        self._make_clickable()

    # ------------------------------------------------------------ menu

    def _image(self) -> Any:
        return self.images[ICON if self.app.serving else ERROR_ICON]

    def _items(self) -> list[Any]:
        items: list[Any] = []
        for entry in self.app.menu():
            if entry.clickable and entry.checked is not None:
                items.append(
                    self.pystray.MenuItem(
                        entry.label,
                        self._action(entry.command),
                        checked=lambda _item, state=entry.checked: state,
                    )
                )
            elif entry.clickable:
                items.append(
                    self.pystray.MenuItem(
                        entry.label, self._action(entry.command), default=entry.default
                    )
                )
            else:
                items.append(self.pystray.MenuItem(entry.label, None, enabled=False))
            if entry.separator_after:
                items.append(self.pystray.Menu.SEPARATOR)
        return items

    def _action(self, command: str | None) -> Any:
        def run(icon: Any, item: Any) -> None:
            self.click(command or "")

        return run

    def click(self, command: str) -> None:
        """Handle a menu command without blocking the GUI thread; never raises."""
        try:
            if command == menu.QUIT:
                self.app.request_quit()
                if self.backend in ("gtk", "appindicator", "darwin", "win32"):
                    self.icon.stop()  # else Tray.run's wait() sees quit_requested
            elif command in (menu.COPY_BASE_URL, menu.COPY_CONTINUE):
                self.app.dispatch(command)  # the GTK clipboard wants the GUI thread
            else:
                threading.Thread(
                    target=self.app.dispatch, args=(command,), name=f"tray-{command}", daemon=True
                ).start()
        except Exception:
            log.exception("tray command %s failed", command)

    def refresh(self) -> None:
        try:
            self.icon.icon = self._image()
            self.icon.title = self.app.status
            self.icon.update_menu()
        except Exception:
            log.debug("tray refresh failed", exc_info=True)

    def notify(self, notice: Notice) -> None:
        """Show a notice on the desktop (App.notify has logged it)."""
        if not getattr(self.icon, "HAS_NOTIFICATION", False):
            return
        try:
            self.icon.notify(notice.message, notice.title)
        except Exception:
            log.debug("notification failed", exc_info=True)

    # ------------------------------------------------------------ backend quirks

    def _make_clickable(self) -> None:
        """pystray's xorg icon never asks X for button presses (pystray#151), so a click
        does nothing. Ask for them: a left click then runs the default entry, which opens
        the page offering every menu action."""
        if self.backend != "xorg":
            return
        try:
            from Xlib import X

            window = self.icon._window
            window.change_attributes(
                event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask
            )
            self.icon._display.flush()
        except Exception:
            log.warning("could not make the tray icon clickable", exc_info=True)

    def _watch_dock(self) -> None:
        """xorg: dock when a tray host appears later (a panel started after trayproxy, or
        restarted); pystray's xorg icon tries only when it is created or updated."""
        try:
            from Xlib import X
            from Xlib import display as xdisplay

            conn = xdisplay.Display()
            atom = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
        except Exception:
            log.debug("cannot watch for a tray host", exc_info=True)
            return
        told = False
        try:
            root = conn.screen().root
            while not self.app.quit_requested.wait(2.0):
                if getattr(self.icon, "_systray_manager", None) and not self._on_root(conn, root):
                    continue  # docked and embedded in the panel
                if conn.get_selection_owner(atom) == X.NONE:
                    if not told:
                        told = True
                        if self.app.server is not None:
                            log.warning(
                                "no tray host is running yet: the icon appears when one "
                                "starts. Meanwhile the routing log is at %s/_trayproxy/",
                                self.app.server.root_url,
                            )
                        else:
                            log.warning(
                                "no tray host is running yet: the icon appears when one starts"
                            )
                    continue
                self.refresh()  # pystray docks the icon while updating it
        finally:
            conn.close()

    def _on_root(self, conn: Any, root: Any) -> bool:
        """The icon window still sits on the root window: the panel never embedded it."""
        try:
            window = conn.create_resource_object("window", self.icon._window.id)
            return window.query_tree().parent.id == root.id
        except Exception:
            return False

    def _install_glib_signal_handlers(self) -> None:
        """GTK's main loop owns the main thread: let GLib turn Ctrl-C/SIGTERM into Quit."""

        def stop(*_: Any) -> bool:
            self.click(menu.QUIT)
            return False

        def reload(*_: Any) -> bool:
            self.click(menu.RELOAD)
            return True  # keep the handler

        try:
            from gi.repository import GLib

            for sig in (signal.SIGINT, signal.SIGTERM):
                GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, stop)
            if hasattr(signal, "SIGHUP"):
                GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGHUP, reload)
        except Exception:
            log.debug("no GLib signal handlers", exc_info=True)

    # ------------------------------------------------------------ run

    def run(self) -> None:
        """Until Quit. The GTK backends own the main thread; the others (xorg, and the
        dummy backend in tests) run in a daemon thread while the main thread waits for
        Quit or a signal: python-xlib's blocking reads can miss the wake-up that
        pystray's stop() sends from another thread."""

        def setup(icon: Any) -> None:
            icon.visible = True
            if self.backend in ("gtk", "appindicator"):
                self._install_glib_signal_handlers()
            if self.backend == "xorg":
                log.info("tray backend xorg: no menu; a click opens the page. %s", FULL_MENU_HINT)
                # The icon was made with the current image, and xorg shows no title or menu.
                # Each update from this thread is a round trip into pystray's X thread, which
                # can lose python-xlib's wake-up and leave clicks unanswered: skip the needless.
                if icon.icon is self._image():
                    return
            self.refresh()

        if self.backend not in ("xorg", "dummy"):
            self.icon.run(setup)
            return
        thread = threading.Thread(
            target=self.icon.run, args=(setup,), name="tray-icon", daemon=True
        )
        thread.start()
        if self.backend == "xorg":
            threading.Thread(target=self._watch_dock, name="tray-dock", daemon=True).start()
        self.app.wait()
        stopper = threading.Thread(target=self.icon.stop, name="tray-stop", daemon=True)
        stopper.start()
        stopper.join(2)


def _backend_name(icon: Any) -> str:
    """'gtk', 'appindicator', 'xorg', 'darwin', 'win32' or 'dummy'."""
    forced = os.environ.get("PYSTRAY_BACKEND")  # pystray obeys it when set
    if forced:
        return forced
    return type(icon).__module__.rsplit(".", 1)[-1].lstrip("_")


def run(app: App) -> bool:
    """Show the tray until Quit. False if no tray could be shown (the reason is logged)."""
    reason = unavailable_reason()
    if reason is None:
        try:
            _name_the_process()
            import pystray
            from PIL import Image

            tray = Tray(app, pystray, Image)
        except Exception as exc:  # Xlib raises DisplayNameError etc., not ImportError
            reason = f"{type(exc).__name__}: {exc}"
    if reason is not None:
        if app.server is not None:
            log.warning(
                "No system tray available (%s); trayproxy keeps serving without an icon. "
                "Open %s/_trayproxy/ in a browser for the routing log.",
                reason,
                app.server.root_url,
            )
        else:
            log.warning("No system tray available (%s).", reason)
        return False
    app.set_notifier(tray.notify)
    app.add_listener(tray.refresh)
    if tray.backend not in ("xorg", "dummy"):  # those wait in App.wait, which sees Quit
        app.add_quit_listener(
            lambda: threading.Thread(target=tray.icon.stop, name="tray-stop").start()
        )
    log.info("tray icon ready (backend %s)", tray.backend)
    try:
        tray.run()
    except Exception as exc:
        if not app.quit_requested.is_set():
            log.warning("the tray icon stopped (%s); trayproxy keeps serving without it", exc)
            return False
        log.debug("tray exit", exc_info=True)  # GLib raises about notifications on exit
    return app.quit_requested.is_set()
