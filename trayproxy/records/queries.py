"""Reading the routing history: recent records, one record, and the usage statistics.

The statistics are computed once, in SQL. The page of a server without a history asks the
same queries about its in-memory records (``usage_of``: they are put in a database in
memory first). What counts as a failed request is stated here, in SQL for the queries and
in Python for records still in memory, side by side.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from trayproxy.records.history import connect, in_memory
from trayproxy.records.logbook import RouteRecord

# A failed request: an error answer, or an error after the answer began (a stream cut off,
# say, is recorded with status 200 and an error). The two must say the same thing.
FAILED_SQL = "(status >= 400 OR error IS NOT NULL)"


def failed(record: Mapping[str, Any]) -> bool:
    """FAILED_SQL for a record as a dict (``RouteRecord.to_dict()``, or a row read back)."""
    return record["status"] >= 400 or record["error"] is not None


def _where(model: str | None, provider: str | None, status: str | None) -> tuple[str, list[Any]]:
    """The page's and the commands' filters as SQL; ``matches`` is the same in Python.
    ``status`` is "ok", "error" or a status code."""
    where, args = [], []
    if model:
        where.append("client_model = ?")
        args.append(model)
    if provider:
        where.append("provider = ?")
        args.append(provider)
    if status == "ok":
        where.append(f"NOT {FAILED_SQL}")
    elif status == "error":
        where.append(FAILED_SQL)
    elif status and status.isdigit():
        where.append("status = ?")
        args.append(int(status))
    return (" WHERE " + " AND ".join(where)) if where else "", args


def matches(
    record: Mapping[str, Any], model: str | None, provider: str | None, status: str | None
) -> bool:
    """``_where`` for a record as a dict."""
    if model and record["client_model"] != model:
        return False
    if provider and record["provider"] != provider:
        return False
    if status == "ok":
        return not failed(record)
    if status == "error":
        return failed(record)
    if status and status.isdigit():
        return record["status"] == int(status)
    return True


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


def _as_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["stream"] = bool(d["stream"])
    d["rewrites"] = json.loads(d["rewrites"] or "[]")
    d["attempts"] = json.loads(d.get("attempts") or "[]")
    d["tokens_estimated"] = bool(d.get("tokens_estimated"))
    d["keys_skipped"] = json.loads(d.get("keys_skipped") or "[]")
    return d


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
    clause, args = _where(model, provider, status)
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


# ---------------------------------------------------------------- statistics


# What requests cost, in dollars: the sum of the priced ones (NULL, never 0, when none had a
# price), how many with tokens had no price (a failed request without tokens cost nothing
# and is not one), and how many of the priced ones were priced from estimated token counts.
_UNPRICED = "cost IS NULL AND (prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL)"
_COSTS = f"""sum(cost) AS cost, coalesce(sum({_UNPRICED}), 0) AS unpriced,
    coalesce(sum(cost IS NOT NULL AND tokens_estimated), 0) AS cost_estimated"""
_NO_COST = {"cost": None, "unpriced": 0, "cost_estimated": 0}


def usage(path: Path, days: int = 7, now: float | None = None) -> dict[str, Any]:
    """Today and the last ``days`` days per model, requests, tokens and cost per day for a
    chart, and what today cost so far (``today_cost``, to hold against a budget)."""
    if path.exists():
        try:
            with reading(path) as conn:
                return _usage(conn, days, now)
        except _NoTable:
            pass
    return usage_of([], days, now)


def usage_of(records: Iterable[RouteRecord], days: int, now: float | None = None) -> dict[str, Any]:
    """``usage`` of records kept in memory only."""
    conn = in_memory(records)
    try:
        return _usage(conn, days, now)
    finally:
        conn.close()


def _usage(conn: sqlite3.Connection, days: int, now: float | None) -> dict[str, Any]:
    now = time.time() if now is None else now
    start = _local_midnight(now, days - 1)
    per_day = {
        row["date"]: dict(row)
        for row in conn.execute(
            f"""SELECT date(time, 'unixepoch', 'localtime') AS date, count(*) AS requests,
                sum({FAILED_SQL}) AS errors,
                coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS tokens,
                coalesce(sum(tokens_estimated), 0) AS estimated, {_COSTS}
            FROM requests WHERE time >= ? GROUP BY 1""",
            (start,),
        )
    }
    nothing = {"requests": 0, "errors": 0, "tokens": 0, "estimated": 0, **_NO_COST}
    daily = []
    for back in range(days - 1, -1, -1):
        day = time.strftime("%Y-%m-%d", time.localtime(_local_midnight(now, back)))
        daily.append({"date": day, **nothing, **per_day.get(day, {})})
    today = conn.execute(
        f"SELECT {_COSTS} FROM requests WHERE time >= ?", (_local_midnight(now),)
    ).fetchone()
    return {
        "days": days,
        "today": _per_model(conn, _local_midnight(now)),
        "period": _per_model(conn, start),
        "daily": daily,
        "today_cost": dict(today),
    }


def _rank(q: float) -> str:
    """The 0-based rank of the q-quantile among ``n`` sorted values, in SQL: q * (n - 1)
    rounded half to even (Python's ``round``, as the statistics always were)."""
    x = f"({q} * (n - 1))"
    low = f"CAST({x} AS INTEGER)"
    up = f"{x} - {low} > 0.5 OR ({x} - {low} = 0.5 AND {low} % 2 = 1)"
    return f"(CASE WHEN {up} THEN {low} + 1 ELSE {low} END)"


# Per model since a time: requests, failed ones, tokens (and how many requests' tokens were
# estimated; cached and reasoning tokens are parts of them), the cost (``_COSTS``), and the
# median and p95 duration of the answered (not failed) ones; the busiest 200 models.
_PER_MODEL = f"""
WITH chosen AS (SELECT * FROM requests WHERE time >= :since),
answered AS (
    SELECT client_model, duration_ms,
        row_number() OVER (PARTITION BY client_model ORDER BY duration_ms) - 1 AS k,
        count(*) OVER (PARTITION BY client_model) AS n
    FROM chosen WHERE NOT {FAILED_SQL}
),
spread AS (
    SELECT client_model,
        round(max(CASE WHEN k = {_rank(0.5)} THEN duration_ms END), 1) AS median_ms,
        round(max(CASE WHEN k = {_rank(0.95)} THEN duration_ms END), 1) AS p95_ms
    FROM answered GROUP BY client_model
),
counted AS (
    SELECT client_model, max(provider) AS provider, count(*) AS requests,
        sum({FAILED_SQL}) AS errors,
        coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
        coalesce(sum(completion_tokens), 0) AS completion_tokens,
        coalesce(sum(tokens_estimated), 0) AS estimated,
        coalesce(sum(cached_tokens), 0) AS cached_tokens,
        coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
        {_COSTS}
    FROM chosen GROUP BY client_model
)
SELECT coalesce(counted.client_model, '(none)') AS model, provider, requests, errors,
    prompt_tokens, completion_tokens, estimated, cached_tokens, reasoning_tokens,
    cost, unpriced, cost_estimated, median_ms, p95_ms
FROM counted LEFT JOIN spread ON spread.client_model IS counted.client_model
ORDER BY requests DESC, model LIMIT 200
"""


def _per_model(conn: sqlite3.Connection, since: float) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(_PER_MODEL, {"since": since})]


def _local_midnight(now: float, days_back: int = 0) -> float:
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday - days_back, 0, 0, 0, 0, 0, -1))
