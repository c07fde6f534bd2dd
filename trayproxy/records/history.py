"""Routing history in SQLite: written off the request path in batches, kept N days.

One writer thread owns the writing connection; readers (``queries``: the page's API in
worker threads, the ``logs`` and ``usage`` commands) open their own. WAL mode lets them read
while it writes. The schema is the steps in ``migrations``. A damaged database is set aside
and a new one started; one that cannot be written is reported, and the records stay in the
in-memory log: never a crash.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from trayproxy.core.threads import leave_signals_to_the_main_thread, yield_cpu_to_serving
from trayproxy.records.logbook import RouteRecord
from trayproxy.records.migrations import migrate

log = logging.getLogger(__name__)

COLUMNS = (
    "uid",
    "time",
    "endpoint",
    "client_model",
    "provider",
    "upstream_model",
    "rule",
    "stream",
    "status",
    "ttfb_ms",
    "duration_ms",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "upstream_url",
    "rewrites",
    "error_body",
    "attempts",
    "tokens_estimated",
    "key_label",
    "keys_skipped",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
)
_INSERT = (
    f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)
BATCH = 500
IDLE_SECONDS = 600.0  # an idle writer still wakes now and then (hourly pruning)
GATHER_SECONDS = 0.25  # records arriving within this of the first share one transaction
MAX_PENDING = 100_000
PRUNE_SECONDS = 3600.0  # the retention is applied after the first batch, then hourly


_MAX_INT = 2**53


def _storable(value: Any) -> Any:
    """What SQLite takes: valid UTF-8 text, integers in range."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a client
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, int) and not isinstance(value, bool) and not -_MAX_INT < value < _MAX_INT:
        return None
    return value


def _row(record: RouteRecord) -> tuple[Any, ...]:
    """The record as a row of COLUMNS (read straight from its fields: no deep copy)."""
    out = []
    for column in COLUMNS:
        value = getattr(record, column)
        if column in ("rewrites", "keys_skipped"):
            value = json.dumps([_storable(v) for v in value])
        elif column == "attempts":
            value = _storable(json.dumps(list(value), default=str)) if value else "[]"
        elif column == "stream":
            value = int(value)
        else:
            value = _storable(value)
        out.append(value)
    return tuple(out)


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    else:
        conn = sqlite3.connect(path, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def _tune(conn: sqlite3.Connection) -> None:
    # WAL: the page and `trayproxy logs` read while the writer writes. NORMAL: no fsync per
    # transaction; a power cut may lose the last moment of history, never the database.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


class History:
    def __init__(
        self,
        path: Path,
        *,
        days: int = 30,
        on_problem: Callable[[str], None] | None = None,
        flush_interval: float = 0.5,
    ) -> None:
        self.path = path
        self.days = days
        self.problem: str | None = None
        self._on_problem = on_problem or (lambda message: None)
        # records waiting for the writer: appended by the relay, taken by the writer thread
        self._items: deque[RouteRecord] = deque()
        self._added = itertools.count(1)  # next() is atomic: callers on any thread
        self._queued = 0  # how many were added, as of the last add
        self._handled = 0  # how many the writer has written or given up on
        self._wake = threading.Event()
        self._idle = False  # the writer waits for _wake: adders must set it
        self._stopping = False
        self._interval = flush_interval
        self._gather = min(GATHER_SECONDS, flush_interval)
        self._thread: threading.Thread | None = None
        self._written = threading.Condition()
        self._last_prune = 0.0
        self._backlog: list[RouteRecord] = []
        self.retry_seconds = 30.0

    # ------------------------------------------------------------ writing

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trayproxy-history", daemon=True)
        self._thread.start()

    def add(self, record: RouteRecord) -> None:
        """Queue a record (never blocks the caller: no lock is taken unless the writer
        sleeps)."""
        if len(self._items) >= MAX_PENDING:
            self._report("history is falling behind; some requests were not saved")
            return
        self._items.append(record)
        self._queued = next(self._added)
        if self._idle:
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (or given up on)."""
        target = self._queued
        if self._thread is None:
            return not self._items
        self._wake.set()
        with self._written:
            return self._written.wait_for(lambda: self._handled >= target, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _report(self, message: str) -> None:
        if message != self.problem:
            self.problem = message
            log.warning("%s", message)
            try:
                self._on_problem(message)
            except Exception:
                log.exception("reporting a history problem failed")

    def _open(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            status = conn.execute("PRAGMA quick_check").fetchone()[0]
            if status != "ok":
                conn.close()
                raise sqlite3.DatabaseError(f"integrity check: {status}")
            _tune(conn)
            migrate(conn)
            return conn
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc) and self.path.exists():
                moved = self._set_aside()
                self._report(
                    f"the history database was damaged ({exc}); it was moved to {moved.name} "
                    "and a new one started"
                )
                try:
                    conn = connect(self.path)
                    _tune(conn)
                    migrate(conn)
                    return conn
                except sqlite3.Error as again:
                    exc = again
            self._report(f"history is not being saved ({self.path}: {exc})")
        except OSError as exc:
            self._report(f"history is not being saved ({self.path}: {exc})")
        return None

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                source.replace(Path(str(target) + suffix))
        return target

    def _run(self) -> None:
        leave_signals_to_the_main_thread()
        yield_cpu_to_serving()
        conn = self._open()
        if conn is not None and self.problem and "damaged" not in self.problem:
            self.problem = None
        retry_at = 0.0
        stopping = False
        while not stopping:
            if not self._items and not self._stopping:
                self._idle = True
                if not self._items:  # checked again: an adder may have missed _idle
                    # idle: sleep until a record comes (a tray must not wake for nothing),
                    # or retry soon while the database is away and records wait for it
                    waiting = self._backlog or conn is None
                    self._wake.wait(self._interval if waiting else IDLE_SECONDS)
                self._idle = False
                self._wake.clear()
            if self._items and not self._stopping and len(self._items) < BATCH:
                # gather what arrives in the next moment too: one transaction per batch,
                # not per request
                self._wake.wait(self._gather)
                self._wake.clear()
            stopping = self._stopping
            batch: list[RouteRecord] = []
            while self._items and (len(batch) < BATCH or stopping):
                batch.append(self._items.popleft())
            if conn is None and (time.monotonic() >= retry_at or stopping):
                conn = self._open()
                retry_at = time.monotonic() + self.retry_seconds
            # records that could not be written wait (bounded) for the database to return
            self._backlog.extend(batch)
            if len(self._backlog) > MAX_PENDING:
                del self._backlog[: len(self._backlog) - MAX_PENDING]
            try:
                if conn is not None and self._backlog:
                    conn = self._write(conn, self._backlog)
                    if conn is not None:
                        self._backlog = []
                if conn is not None:
                    self._maybe_prune(conn)
            except Exception:  # never let the writer die: report and go on
                log.exception("the history writer hit an unexpected error")
                self._backlog = []
            self._done(len(batch))
        if conn is not None:
            conn.close()

    def _write(
        self, conn: sqlite3.Connection, batch: list[RouteRecord]
    ) -> sqlite3.Connection | None:
        rows = list(_rows(batch, self._report, pause=True))
        try:
            with conn:
                conn.executemany(_INSERT, rows)
            if self.problem and "not being saved" in self.problem:
                self.problem = None
            return conn
        except sqlite3.Error as exc:
            self._report(f"history is not being saved ({self.path}: {exc})")
            conn.close()
            return None

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        if now - self._last_prune < PRUNE_SECONDS:
            return
        self._last_prune = now
        try:
            with conn:
                conn.execute("DELETE FROM requests WHERE time < ?", (now - self.days * 86400,))
        except sqlite3.Error as exc:
            log.warning("pruning the history failed: %s", exc)

    def _done(self, n: int) -> None:
        with self._written:
            self._handled += n
            self._written.notify_all()


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "integrity check", "corrupt"))


def _rows(
    records: Iterable[RouteRecord], report: Callable[[str], None], *, pause: bool = False
) -> Iterator[tuple[Any, ...]]:
    for n, record in enumerate(records, 1):
        try:
            yield _row(record)
        except Exception as exc:  # one odd record must not cost the others
            report(f"a request could not be saved in the history: {exc}")
        if pause and not n % 16:
            time.sleep(0)  # let the proxy's thread have the GIL: no latency spikes


def in_memory(records: Iterable[RouteRecord]) -> sqlite3.Connection:
    """A database in memory holding ``records``, for the history's queries to answer about
    records that are not written anywhere (the page of a server without a history)."""
    conn = connect(":memory:")
    migrate(conn)
    with conn:
        conn.executemany(_INSERT, _rows(records, lambda message: log.warning("%s", message)))
    return conn
