"""Bookkeeping threads run below the thread that answers requests."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from trayproxy.core.threads import BACKGROUND_NICENESS, yield_cpu_to_serving


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: Linux")
def test_a_bookkeeping_thread_gets_a_lower_priority_and_others_keep_theirs() -> None:
    seen: dict[str, int] = {}

    def worker() -> None:
        tid = threading.get_native_id()
        seen["before"] = os.getpriority(os.PRIO_PROCESS, tid)
        yield_cpu_to_serving()
        seen["after"] = os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert seen["after"] == min(19, seen["before"] + BACKGROUND_NICENESS)
    assert seen["after"] > seen["before"]
    # the calling (serving) thread is untouched
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == seen["before"]
