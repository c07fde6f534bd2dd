"""Helpers for trayproxy's background threads."""

from __future__ import annotations

import signal

_SIGNALS = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}


def leave_signals_to_the_main_thread() -> None:
    """Block SIGINT/SIGTERM/SIGHUP in the calling (background) thread.

    The kernel may deliver a process signal to any thread that does not block it. Python
    runs handlers on the main thread only, and only once that thread runs again: when it
    sits in a blocking read (the tray's X event loop) a signal taken by another thread
    would wait for the next X event. Threads started from this one inherit the mask.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
