"""Helpers for trayproxy's background threads."""

from __future__ import annotations

import os
import signal
import sys
import threading

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


BACKGROUND_NICENESS = 10


def yield_cpu_to_serving() -> None:
    """Lower the calling thread's CPU priority (Linux; elsewhere nothing happens).

    Bookkeeping threads (the history writer, the log flusher, the config watcher) then take
    the CPU only when the thread that answers requests does not want it: on a busy or
    single core, a batch of history rows no longer delays an answer by a millisecond.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + BACKGROUND_NICENESS))
    except (AttributeError, OSError):  # not allowed here: run at the usual priority
        pass
