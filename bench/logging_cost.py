"""What one request's log line costs: trayproxy's batched handlers against the standard
library's ``QueueHandler`` + ``QueueListener`` with a ``StreamHandler`` and a
``RotatingFileHandler``, side by side in one run.

    python -m bench.logging_cost [--lines N] [--repeats N]

Prints, per line, the time the logging call takes on the caller's thread (the event loop's,
in trayproxy) and the CPU the whole process spends on it (every thread). Writes to a
temporary folder and ``os.devnull``; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = (
    "chat/completions nvidia/kimi-k2-thinking -> nvidia:moonshotai/kimi-k2-thinking json 200 "
    "ttfb=412ms total=3190ms tokens=1200/450"
)
FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
WAYS = ("batched", "stdlib-queue")


def run_one(way: str, lines: int) -> tuple[float, float]:
    """(caller µs per line, process CPU µs per line) for one way, in this process."""
    from trayproxy.records import logfile

    folder = Path(tempfile.mkdtemp(prefix="trayproxy-logcost-"))
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    logfile.lighten_records()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    logger = logging.getLogger(logfile.REQUESTS)
    if way == "batched":  # what trayproxy does (records/logfile.py)
        handlers: list[logging.Handler] = [
            logfile.BatchedStreamHandler(devnull),
            logfile.BatchedFileHandler(folder / "trayproxy.log", 2_000_000, 3),
        ]
        for handler in handlers:
            handler.setFormatter(logfile.CachedTimeFormatter(FORMAT, "%H:%M:%S"))
        root.handlers[:] = handlers
        logfile.route_request_lines(handlers)

        def emit() -> None:
            if not logfile.request_line(LINE):
                logger.info("%s", LINE)

        finish = logfile.flush_all
    else:  # the standard library's queue handler and listener
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        targets: list[logging.Handler] = [
            logging.StreamHandler(devnull),
            logging.handlers.RotatingFileHandler(
                folder / "trayproxy.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
            ),
        ]
        for handler in targets:
            handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        listener = logging.handlers.QueueListener(records, *targets, respect_handler_level=True)
        listener.start()
        root.handlers[:] = [logging.handlers.QueueHandler(records)]

        def emit() -> None:
            logger.info("%s", LINE)

        finish = listener.stop
    for _ in range(lines // 10):  # warm up
        emit()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(lines):
        emit()
    caller = (time.perf_counter() - wall) / lines * 1e6
    finish()
    return caller, (time.process_time() - cpu) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(*run_one(args.one, args.lines))
        return
    results: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    root = Path(__file__).resolve().parent.parent
    for _ in range(args.repeats):
        for way in WAYS:  # each in a fresh process: logging is process-wide
            command = [sys.executable, "-m", "bench.logging_cost", "--one", way]
            command += ["--lines", str(args.lines)]
            out = subprocess.run(
                command, check=True, capture_output=True, text=True, cwd=root
            ).stdout.split()
            results[way].append((float(out[0]), float(out[1])))
    print(f"one request's log line, {args.lines} lines, medians of {args.repeats}:")
    for way, runs in results.items():
        caller = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"  {way:14s} caller {caller:5.1f} µs   process CPU {cpu:5.1f} µs")


if __name__ == "__main__":
    main()
