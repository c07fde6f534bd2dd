"""trayproxy: a local LLM gateway that lives in the system tray."""

__version__ = "0.1.0"
