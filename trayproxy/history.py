"""Routing history in SQLite: written off the request path in batches, kept N days.

One writer thread owns the writing connection; readers (the page's API in worker threads,
the ``logs`` and ``usage`` commands) open their own. WAL mode lets them read while it
writes. A damaged database is set aside and a new one started; one that cannot be written
is reported, and the records stay in the in-memory log: never a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from trayproxy.logbook import RouteRecord
from trayproxy.threads import leave_signals_to_the_main_thread

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
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    uid TEXT UNIQUE NOT NULL,
    time REAL NOT NULL,
    endpoint TEXT NOT NULL,
    client_model TEXT,
    provider TEXT,
    upstream_model TEXT,
    rule TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    ttfb_ms REAL,
    duration_ms REAL NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    error TEXT,
    upstream_url TEXT,
    rewrites TEXT NOT NULL DEFAULT '[]',
    error_body TEXT,
    attempts TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE INDEX IF NOT EXISTS requests_model ON requests (client_model, time);
"""
BATCH = 500
MAX_PENDING = 100_000


def _row(record: RouteRecord) -> tuple[Any, ...]:
    d = record.to_dict()
    d["rewrites"] = json.dumps(d["rewrites"])
    d["attempts"] = json.dumps(d["attempts"])
    d["stream"] = int(d["stream"])
    return tuple(d[c] for c in COLUMNS)


def _as_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["stream"] = bool(d["stream"])
    d["rewrites"] = json.loads(d["rewrites"] or "[]")
    d["attempts"] = json.loads(d.get("attempts") or "[]")
    return d


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed afterwards (sqlite3's own ``with`` only commits)."""
    conn = connect(path, readonly=True)
    try:
        yield conn
    finally:
        conn.close()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    else:
        conn = sqlite3.connect(path, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


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
        self._queue: queue.Queue[RouteRecord | None] = queue.Queue(MAX_PENDING)
        self._interval = flush_interval
        self._thread: threading.Thread | None = None
        self._written = threading.Condition()
        self._pending = 0
        self._last_prune = 0.0

    # ------------------------------------------------------------ writing

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trayproxy-history", daemon=True)
        self._thread.start()

    def add(self, record: RouteRecord) -> None:
        """Queue a record (never blocks the caller)."""
        with self._written:
            self._pending += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._written:
                self._pending -= 1
            self._report("history is falling behind; some requests were not saved")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (or given up on)."""
        with self._written:
            return self._written.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
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
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
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
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(SCHEMA)
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
        conn = self._open()
        if conn is not None and self.problem and "damaged" not in self.problem:
            self.problem = None
        retry_at = 0.0
        stopping = False
        while not stopping:
            batch: list[RouteRecord] = []
            try:
                item = self._queue.get(timeout=self._interval)
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
                while len(batch) < BATCH:
                    item = self._queue.get_nowait()
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
            except queue.Empty:
                pass
            if conn is None and time.monotonic() >= retry_at:
                conn = self._open()
                retry_at = time.monotonic() + 30
            if conn is not None and batch:
                conn = self._write(conn, batch)
            if conn is not None:
                self._maybe_prune(conn)
            self._done(len(batch))
        if conn is not None:
            conn.close()

    def _write(
        self, conn: sqlite3.Connection, batch: list[RouteRecord]
    ) -> sqlite3.Connection | None:
        placeholders = ", ".join("?" for _ in COLUMNS)
        try:
            with conn:
                conn.executemany(
                    f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) "
                    f"VALUES ({placeholders})",
                    [_row(r) for r in batch],
                )
            if self.problem and "not being saved" in self.problem:
                self.problem = None
            return conn
        except sqlite3.Error as exc:
            self._report(f"history is not being saved ({self.path}: {exc})")
            conn.close()
            return None

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        try:
            with conn:
                conn.execute("DELETE FROM requests WHERE time < ?", (now - self.days * 86400,))
        except sqlite3.Error as exc:
            log.warning("pruning the history failed: %s", exc)

    def prune_now(self) -> int:
        """Apply the retention at once (the writer also does it hourly). Rows deleted."""
        try:
            conn = connect(self.path)
            try:
                with conn:
                    cur = conn.execute(
                        "DELETE FROM requests WHERE time < ?", (time.time() - self.days * 86400,)
                    )
                return cur.rowcount
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.warning("pruning the history failed: %s", exc)
            return 0

    def _done(self, n: int) -> None:
        with self._written:
            self._pending -= n
            self._written.notify_all()


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "integrity check", "corrupt"))


# ---------------------------------------------------------------- reading


def _filters(model: str | None, provider: str | None, status: str | None) -> tuple[str, list[Any]]:
    where, args = [], []
    if model:
        where.append("client_model = ?")
        args.append(model)
    if provider:
        where.append("provider = ?")
        args.append(provider)
    if status == "ok":
        where.append("status < 400 AND error IS NULL")
    elif status == "error":
        where.append("(status >= 400 OR error IS NOT NULL)")
    elif status and status.isdigit():
        where.append("status = ?")
        args.append(int(status))
    return (" WHERE " + " AND ".join(where)) if where else "", args


def recent(
    path: Path,
    limit: int = 100,
    *,
    model: str | None = None,
    provider: str | None = None,
    status: str | None = None,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first (oldest first with ``after_id``, for following). Empty if no database."""
    if not path.exists():
        return []
    clause, args = _filters(model, provider, status)
    if after_id is not None:
        clause += (" AND " if clause else " WHERE ") + "id > ?"
        args.append(after_id)
        order = "id ASC"
    else:
        order = "time DESC, id DESC"
    with reading(path) as conn:
        rows = conn.execute(
            f"SELECT * FROM requests{clause} ORDER BY {order} LIMIT ?", (*args, limit)
        ).fetchall()
    return [_as_dict(r) for r in rows]


def get(path: Path, uid: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with reading(path) as conn:
        row = conn.execute("SELECT * FROM requests WHERE uid = ?", (uid,)).fetchone()
    return _as_dict(row) if row else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 1)


def _local_midnight(now: float, days_back: int = 0) -> float:
    t = time.localtime(now)
    midnight = time.mktime((t.tm_year, t.tm_mon, t.tm_mday - days_back, 0, 0, 0, 0, 0, -1))
    return midnight


def summarize(rows: Iterable[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """Per model: requests, errors, tokens, median and p95 duration (of answered requests)."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["time"] < since:
            continue
        g = groups.setdefault(
            r["client_model"] or "(none)",
            {
                "model": r["client_model"] or "(none)",
                "provider": r["provider"],
                "requests": 0,
                "errors": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "_durations": [],
            },
        )
        g["requests"] += 1
        failed = r["status"] >= 400 or r["error"] is not None
        g["errors"] += int(failed)
        g["prompt_tokens"] += r["prompt_tokens"] or 0
        g["completion_tokens"] += r["completion_tokens"] or 0
        if not failed:
            g["_durations"].append(r["duration_ms"])
    out = []
    for g in sorted(groups.values(), key=lambda g: -g["requests"]):
        durations = g.pop("_durations")
        g["median_ms"] = _percentile(durations, 0.5)
        g["p95_ms"] = _percentile(durations, 0.95)
        out.append(g)
    return out


def usage(path: Path, days: int = 7, now: float | None = None) -> dict[str, Any]:
    """Today and the last ``days`` days per model, and requests per day for a chart."""
    now = time.time() if now is None else now
    start = _local_midnight(now, days - 1)
    rows: list[dict[str, Any]] = []
    if path.exists():
        with reading(path) as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    "SELECT time, client_model, provider, status, error, duration_ms, "
                    "prompt_tokens, completion_tokens FROM requests WHERE time >= ?",
                    (start,),
                )
            ]
    return usage_of(rows, days, now)


def usage_of(rows: list[dict[str, Any]], days: int, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    start = _local_midnight(now, days - 1)
    series = []
    for back in range(days - 1, -1, -1):
        lo, hi = _local_midnight(now, back), _local_midnight(now, back - 1)
        day = [r for r in rows if lo <= r["time"] < hi]
        series.append(
            {
                "date": time.strftime("%Y-%m-%d", time.localtime(lo)),
                "requests": len(day),
                "errors": sum(1 for r in day if r["status"] >= 400 or r["error"] is not None),
                "tokens": sum(
                    (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) for r in day
                ),
            }
        )
    return {
        "days": days,
        "today": summarize(rows, _local_midnight(now)),
        "period": summarize(rows, start),
        "daily": series,
    }
