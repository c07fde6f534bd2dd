"""Log handlers that write in batches: one request's log line must not cost a write and a
flush on every handler, on the event loop's thread.

Lines are formatted where they are logged and written by a small thread every
``FLUSH_SECONDS`` (warnings and errors at once), and at exit. The file handler rotates like
:class:`logging.handlers.RotatingFileHandler`, counting its size itself instead of asking the
file system on every line.

Why not the standard library's ``QueueHandler`` + ``QueueListener``: that listener writes
and flushes each record on each handler, a system call per line per handler. Measured side
by side (``python -m bench.logging_cost``, console and file as trayproxy has them): 2.3 µs
on the caller's thread and 2.9 µs of process CPU per request line here, against 5.0 µs and
20.7 µs through the queue listener: about a tenth of trayproxy's own CPU per request, spent
again on every request of a busy day, on a laptop's battery.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import threading
import time
import weakref
from pathlib import Path
from typing import TextIO

from trayproxy.core.threads import yield_cpu_to_serving

FLUSH_SECONDS = 0.2

_handlers: weakref.WeakSet[logging.Handler] = weakref.WeakSet()
_started = threading.Lock()
_thread: threading.Thread | None = None


_queued = threading.Event()  # set when a line waits: an idle app's flusher sleeps


def _flusher() -> None:
    yield_cpu_to_serving()
    while True:
        _queued.wait()
        time.sleep(FLUSH_SECONDS)
        _queued.clear()
        flush_all()


def flush_all() -> None:
    for handler in list(_handlers):
        with contextlib.suppress(Exception):  # a closed stream at exit: nothing to write
            handler.flush()


def _register(handler: logging.Handler) -> None:
    global _thread
    _handlers.add(handler)
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=_flusher, name="trayproxy-log", daemon=True)
            _thread.start()
            atexit.register(flush_all)


class _Pending:
    def _init_pending(self) -> None:
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()

    def _append(self, text: str) -> None:
        with self._pending_lock:
            self._pending.append(text)
        if not _queued.is_set():
            _queued.set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + "\n"  # type: ignore[attr-defined]
        except Exception:
            self.handleError(record)  # type: ignore[attr-defined]
            return
        self._append(text)
        if record.levelno >= logging.WARNING:
            self.flush()  # type: ignore[attr-defined]

    def _take(self) -> str:
        with self._pending_lock:
            if not self._pending:
                return ""
            text = "".join(self._pending)
            self._pending.clear()
        return text


class BatchedStreamHandler(_Pending, logging.StreamHandler):  # type: ignore[type-arg]
    def __init__(self, stream: TextIO | None = None) -> None:
        logging.StreamHandler.__init__(self, stream)
        self._init_pending()
        _register(self)

    def flush(self) -> None:
        text = self._take()
        if not text:
            return
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(text)
            if hasattr(self.stream, "flush"):
                self.stream.flush()


class BatchedFileHandler(_Pending, logging.handlers.RotatingFileHandler):
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        logging.handlers.RotatingFileHandler.__init__(
            self, path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._init_pending()
        try:
            self._size = path.stat().st_size
        except OSError:
            self._size = 0
        _register(self)

    def flush(self) -> None:
        text = self._take()
        if not text:
            return
        data = len(text.encode("utf-8"))
        with self.lock:  # type: ignore[union-attr]
            if self.maxBytes and self._size and self._size + data > self.maxBytes:
                self.doRollover()
                self._size = 0
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(text)
            self.stream.flush()
            self._size += data


class CachedTimeFormatter(logging.Formatter):
    """A Formatter that renders the time once per second, not once per line."""

    def __init__(self, fmt: str, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(
                self.datefmt or self.default_time_format, self.converter(second)
            )
        if self.datefmt:
            return self._text
        return self.default_msec_format % (self._text, record.msecs)


def lighten_records() -> None:
    """Skip what trayproxy's formats never show: caller, thread and process details
    (the logging HOWTO's "Optimization" settings)."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


# ---------------------------------------------------------------- one line per request
#
# The relay writes a line for every request. Through `logging` that is a LogRecord, a lock and
# a format per handler; here it is one format per handler, into the same batches, giving the
# same lines in the same order. Used once setup_logging has installed the batched handlers.

REQUESTS = "trayproxy.requests"
_requests_logger = logging.getLogger(REQUESTS)  # looked up once: getLogger takes a lock
_request_handlers: list[BatchedStreamHandler | BatchedFileHandler] = []


class _Stamp:
    __slots__ = ("created", "msecs")

    def __init__(self) -> None:
        self.created = 0.0
        self.msecs = 0.0


_stamp = _Stamp()


_installed: list[logging.Handler] = []


def route_request_lines(handlers: list[logging.Handler]) -> None:
    """Send request lines straight to these handlers (the ones setup_logging installed)."""
    _installed[:] = handlers
    _request_handlers[:] = [
        h
        for h in handlers
        if isinstance(h, (BatchedStreamHandler, BatchedFileHandler))
        and isinstance(h.formatter, CachedTimeFormatter)
    ]


def _plain_route(logger: logging.Logger) -> bool:
    """The line would reach exactly the installed handlers: no handler or filter was added
    anywhere on its way (a test's caplog, say), so the short way gives the same result."""
    if logging.root.handlers != _installed:
        return False
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or node.filters or not node.propagate:
            return False
        node = node.parent  # type: ignore[assignment]
    return True


def request_line(text: str) -> bool:
    """Write one request's line; False when the caller should use `logging` instead."""
    logger = _requests_logger
    if not _request_handlers or not logger.isEnabledFor(logging.INFO) or not _plain_route(logger):
        return False
    now = time.time()
    _stamp.created = now
    _stamp.msecs = (now - int(now)) * 1000
    for handler in _request_handlers:
        if handler.level > logging.INFO:
            continue
        fmt = handler.formatter
        assert isinstance(fmt, CachedTimeFormatter)
        values = {
            "asctime": fmt.formatTime(_stamp),  # type: ignore[arg-type]
            "levelname": "INFO",
            "name": REQUESTS,
            "message": text,
        }
        handler._append(fmt._fmt % values + "\n")  # type: ignore[operator]
    return True
