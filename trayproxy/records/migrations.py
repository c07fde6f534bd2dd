"""The history database's schema, as ordered steps; ``PRAGMA user_version`` counts those done.

The writer brings a database up to date when it opens it: the steps after its version run
in one transaction, and the version is set in that same transaction. Add a step at the end;
never edit or reorder one, since a database made by an older trayproxy has run the steps
that existed then.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Step = Callable[[sqlite3.Connection], None]


def _sql(*statements: str) -> Step:
    def run(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return run


def _add_column(table: str, name: str, definition: str) -> Step:
    """Databases made before the version was kept (version 0) may have the column already."""

    def run(conn: sqlite3.Connection) -> None:
        if name not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    return run


STEPS: tuple[Step, ...] = (
    # 1: the first release: one row per request
    _sql(
        """CREATE TABLE IF NOT EXISTS requests (
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
            error_body TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS requests_time ON requests (time)",
        "CREATE INDEX IF NOT EXISTS requests_model ON requests (client_model, time)",
    ),
    # 2: with fallbacks, every provider tried (a JSON list)
    _add_column("requests", "attempts", "TEXT NOT NULL DEFAULT '[]'"),
    # 3: token counts trayproxy estimated (the provider reported none)
    _add_column("requests", "tokens_estimated", "INTEGER NOT NULL DEFAULT 0"),
    # 4: several keys per provider, and what each request cost (NULL: no price known)
    _add_column("requests", "key_label", "TEXT"),
    _add_column("requests", "keys_skipped", "TEXT NOT NULL DEFAULT '[]'"),
    _add_column("requests", "cached_tokens", "INTEGER"),
    _add_column("requests", "reasoning_tokens", "INTEGER"),
    _add_column("requests", "cost", "REAL"),
)
VERSION = len(STEPS)


def migrate(conn: sqlite3.Connection) -> None:
    """Run the steps this database has not run yet. A newer trayproxy's database (a higher
    version) is left as it is: the writer names the columns it fills."""
    conn.execute("BEGIN IMMEDIATE")  # read the version under the write lock
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in STEPS[version:]:
            step(conn)
        if version < VERSION:
            conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
