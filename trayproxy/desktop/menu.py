"""The tray menu as plain data: what the adapter shows, and the command each entry sends."""

from __future__ import annotations

from dataclasses import dataclass

COPY_BASE_URL = "copy_base_url"
COPY_CONTINUE = "copy_continue_config"
COPY_CLAUDE = "copy_claude_code"
COPY_CODEX = "copy_codex_config"
RELOAD = "reload"
OPEN_LOG = "open_routing_log"
OPEN_CONFIG = "open_config"
OPEN_LOG_FOLDER = "open_log_folder"
AUTOSTART = "toggle_autostart"
QUIT = "quit"


@dataclass(frozen=True)
class Command:
    """One thing the user can ask of the app, from the tray menu and (some) from the page."""

    name: str  # what the menu entry and the page's button send
    label: str  # the menu's words
    method: str  # the App method that does it
    done: str | None = None  # the page offers it, and says this when it worked
    page_method: str | None = None  # the page's way to do it, when it differs


# The one table of commands: the menu, App.dispatch and App.page_actions all read it.
TABLE = (
    Command(COPY_BASE_URL, "Copy base URL", "copy_base_url"),  # the page copies by itself
    Command(COPY_CONTINUE, "Copy Continue config", "copy_continue_config"),
    Command(COPY_CLAUDE, "Copy Claude Code setup", "copy_claude_code"),
    Command(COPY_CODEX, "Copy Codex config", "copy_codex_config"),
    Command(RELOAD, "Reload mappings", "reload", done="reloaded"),
    Command(OPEN_LOG, "Recent routing log", "open_routing_log"),
    Command(OPEN_CONFIG, "Open config file", "open_config", done="opened the config file"),
    Command(OPEN_LOG_FOLDER, "Open log folder", "open_log_folder", done="opened the log folder"),
    Command(AUTOSTART, "Start at login", "toggle_autostart", done="changed"),
    # the tray stops itself; the page's quit must also stop the tray
    Command(
        QUIT, "Quit", "request_quit", done="trayproxy is quitting", page_method="quit_from_page"
    ),
)
BY_NAME = {command.name: command for command in TABLE}
COMMANDS = tuple(BY_NAME)


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
    def entry(name: str, **options: bool | None) -> Entry:
        return Entry(BY_NAME[name].label, name, **options)  # type: ignore[arg-type]

    return (
        Entry(status, separator_after=True),
        entry(COPY_BASE_URL),
        entry(COPY_CONTINUE),
        entry(COPY_CLAUDE),
        entry(COPY_CODEX),
        entry(RELOAD),
        entry(OPEN_LOG, default=serving, separator_after=True),
        entry(OPEN_CONFIG, default=not serving),
        entry(OPEN_LOG_FOLDER),
        entry(AUTOSTART, checked=autostart, separator_after=True),
        entry(QUIT),
    )
