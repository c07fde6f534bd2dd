"""Routing history in SQLite: written off the request path in batches, kept N days.

One writer thread owns the writing connection; readers (the page's API in worker threads,
the ``logs`` and ``usage`` commands) open their own. WAL mode lets them read while it
writes. A damaged database is set aside and a new one started; one that cannot be written
is reported, and the records stay in the in-memory log: never a crash.
"""

from __future__ import annotations

import contextlib
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
)
# columns added after the first release, with their definitions, for older databases
ADDED_COLUMNS = {"attempts": "TEXT NOT NULL DEFAULT '[]'"}
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
IDLE_SECONDS = 600.0  # an idle writer still wakes now and then (hourly pruning)
GATHER_SECONDS = 0.25  # records arriving within this of the first share one transaction
MAX_PENDING = 100_000


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
        if column == "rewrites":
            value = json.dumps([_storable(v) for v in value])
        elif column == "attempts":
            value = _storable(json.dumps(list(value), default=str)) if value else "[]"
        elif column == "stream":
            value = int(value)
        else:
            value = _storable(value)
        out.append(value)
    return tuple(out)


def _as_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["stream"] = bool(d["stream"])
    d["rewrites"] = json.loads(d["rewrites"] or "[]")
    d["attempts"] = json.loads(d.get("attempts") or "[]")
    return d


class _NoTable(Exception):
    pass


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed afterwards (sqlite3's own ``with`` only commits).

    Raises _NoTable while trayproxy is creating the database."""
    conn = connect(path, readonly=True)
    try:
        yield conn
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise _NoTable from None
        raise
    finally:
        conn.close()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
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
            conn.executescript(SCHEMA)
            _migrate(conn)
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
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        rows = []
        for n, record in enumerate(batch, 1):
            try:
                rows.append(_row(record))
            except Exception as exc:  # one odd record must not cost the others
                self._report(f"a request could not be saved in the history: {exc}")
            if not n % 16:
                time.sleep(0)  # let the proxy's thread have the GIL: no latency spikes
        try:
            with conn:
                conn.executemany(sql, rows)
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
            self._handled += n
            self._written.notify_all()


def _migrate(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    for name, definition in ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {definition}")
    conn.commit()


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
    try:
        with reading(path) as conn:
            rows = conn.execute(
                f"SELECT * FROM requests{clause} ORDER BY {order} LIMIT ?", (*args, limit)
            ).fetchall()
    except _NoTable:
        return []
    return [_as_dict(r) for r in rows]


def get(path: Path, uid: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        with reading(path) as conn:
            row = conn.execute("SELECT * FROM requests WHERE uid = ?", (uid,)).fetchone()
    except _NoTable:
        return None
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


_FAILED = "(status >= 400 OR error IS NOT NULL)"


def _summary_sql(
    conn: sqlite3.Connection, since: float, durations: dict[str | None, list[float]]
) -> list[dict[str, Any]]:
    """Per model, counted in SQLite; ``durations`` (of answered requests) give the median
    and p95."""
    groups = conn.execute(
        f"SELECT client_model, max(provider), count(*), sum(CASE WHEN {_FAILED} THEN 1 "
        "ELSE 0 END), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0) "
        "FROM requests WHERE time >= ? GROUP BY client_model ORDER BY count(*) DESC LIMIT 200",
        (since,),
    ).fetchall()
    return [
        {
            "model": model or "(none)",
            "provider": provider,
            "requests": n,
            "errors": errors,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "median_ms": _percentile(durations.get(model, []), 0.5),
            "p95_ms": _percentile(durations.get(model, []), 0.95),
        }
        for model, provider, n, errors, prompt, completion in groups
    ]


def _durations(
    conn: sqlite3.Connection, since: float, today: float
) -> tuple[dict[str | None, list[float]], dict[str | None, list[float]]]:
    period: dict[str | None, list[float]] = {}
    recent: dict[str | None, list[float]] = {}
    for model, when, duration in conn.execute(
        f"SELECT client_model, time, duration_ms FROM requests WHERE time >= ? AND NOT {_FAILED}",
        (since,),
    ):
        period.setdefault(model, []).append(duration)
        if when >= today:
            recent.setdefault(model, []).append(duration)
    return period, recent


def usage(path: Path, days: int = 7, now: float | None = None) -> dict[str, Any]:
    """Today and the last ``days`` days per model, and requests per day for a chart."""
    now = time.time() if now is None else now
    start = _local_midnight(now, days - 1)
    if not path.exists():
        return usage_of([], days, now)
    try:
        with reading(path) as conn:
            midnight = _local_midnight(now)
            in_period, in_today = _durations(conn, start, midnight)
            period = _summary_sql(conn, start, in_period)
            today = _summary_sql(conn, midnight, in_today)
            per_day = {
                day: (n, errors, tokens)
                for day, n, errors, tokens in conn.execute(
                    "SELECT date(time, 'unixepoch', 'localtime'), count(*), "
                    f"sum(CASE WHEN {_FAILED} THEN 1 ELSE 0 END), "
                    "coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) "
                    "FROM requests WHERE time >= ? GROUP BY 1",
                    (start,),
                )
            }
    except _NoTable:
        return usage_of([], days, now)
    daily = []
    for back in range(days - 1, -1, -1):
        day = time.strftime("%Y-%m-%d", time.localtime(_local_midnight(now, back)))
        n, errors, tokens = per_day.get(day, (0, 0, 0))
        daily.append({"date": day, "requests": n, "errors": errors, "tokens": tokens})
    return {"days": days, "today": today, "period": period, "daily": daily}


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
