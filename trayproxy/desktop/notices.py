"""What the app tells the user: :class:`Notice` values, logged once each and shown by the
tray's notifier once there is one (the few from before it are kept and shown then), and
the listeners told when the status line or the icon should change."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("trayproxy.desktop.app")


@dataclass(frozen=True)
class Notice:
    title: str
    message: str
    ok: bool = True
    level: int | None = None  # for the log: INFO when ok, else WARNING, unless given


class Notices:
    def __init__(self) -> None:
        self._show: Callable[[Notice], None] | None = None
        self._early: list[Notice] = []
        self._listeners: list[Callable[[], None]] = []

    def set_notifier(self, show: Callable[[Notice], None]) -> None:
        """Show notices with ``show`` from now on, and the ones from start-up now."""
        self._show = show
        early, self._early = self._early, []
        for notice in early:
            self._display(notice)

    def notify(self, notice: Notice) -> None:
        level = notice.level or (logging.INFO if notice.ok else logging.WARNING)
        log.log(level, "%s: %s", notice.title, notice.message)
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

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Called (from any thread) when the status or icon should change."""
        self._listeners.append(callback)

    def changed(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("a status listener failed")
