"""The tray menu as plain data: what the adapter shows, and the command each entry sends."""

from __future__ import annotations

from dataclasses import dataclass

COPY_BASE_URL = "copy_base_url"
COPY_CONTINUE = "copy_continue_config"
RELOAD = "reload"
OPEN_LOG = "open_routing_log"
OPEN_CONFIG = "open_config"
OPEN_LOG_FOLDER = "open_log_folder"
AUTOSTART = "toggle_autostart"
QUIT = "quit"

COMMANDS = (
    COPY_BASE_URL,
    COPY_CONTINUE,
    RELOAD,
    OPEN_LOG,
    OPEN_CONFIG,
    OPEN_LOG_FOLDER,
    AUTOSTART,
    QUIT,
)


@dataclass(frozen=True)
class Entry:
    label: str
    command: str | None = None  # None: a line of text, not clickable
    default: bool = False  # what a left click on the icon does
    separator_after: bool = False
    checked: bool | None = None  # a check box entry when not None

    @property
    def clickable(self) -> bool:
        return self.command is not None


def menu_spec(status: str, *, serving: bool, autostart: bool = False) -> tuple[Entry, ...]:
    return (
        Entry(status, separator_after=True),
        Entry("Copy base URL", COPY_BASE_URL),
        Entry("Copy Continue config", COPY_CONTINUE),
        Entry("Reload mappings", RELOAD),
        Entry("Recent routing log", OPEN_LOG, default=serving, separator_after=True),
        Entry("Open config file", OPEN_CONFIG, default=not serving),
        Entry("Open log folder", OPEN_LOG_FOLDER),
        Entry("Start at login", AUTOSTART, checked=autostart, separator_after=True),
        Entry("Quit", QUIT),
    )
