"""``trayproxy logs`` and ``trayproxy usage``: the routing history in a terminal."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from trayproxy.core.table import render_table
from trayproxy.records import queries

LOG_HEADER = (
    "TIME",
    "CLIENT MODEL",
    "PROVIDER / UPSTREAM",
    "ENDPOINT",
    "STREAM",
    "STATUS",
    "TTFB",
    "TOTAL",
    "TOKENS",
    "ERROR",
)
USAGE_HEADER = ("MODEL", "REQUESTS", "ERRORS", "TOKENS IN", "TOKENS OUT", "MEDIAN", "P95")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def _clean(text: str | None, width: int = 0) -> str:
    if not text:
        return "-"
    text = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return text[: width - 1] + "…" if width and len(text) > width else text


def log_row(r: dict[str, Any]) -> tuple[str, ...]:
    tokens = (
        "-"
        if r["prompt_tokens"] is None and r["completion_tokens"] is None
        else ("~" if r.get("tokens_estimated") else "")
        + f"{r['prompt_tokens'] or 0}/{r['completion_tokens'] or 0}"
    )
    target = f"{r['provider']} / {r['upstream_model']}" if r["provider"] else "-"
    return (
        time.strftime("%m-%d %H:%M:%S", time.localtime(r["time"])),
        _clean(r["client_model"], 40),
        _clean(target, 48),
        r["endpoint"],
        "yes" if r["stream"] else "no",
        str(r["status"]),
        _ms(r["ttfb_ms"]),
        _ms(r["duration_ms"]),
        tokens,
        _clean(r["error"], 60) if r["error"] else "",
    )


FOLLOW_WIDTHS = (14, 32, 40, 16, 6, 6, 7, 7, 11, 0)


def _fixed(cells: tuple[str, ...]) -> str:
    out = []
    for cell, width in zip(cells, FOLLOW_WIDTHS, strict=True):
        if width and len(cell) > width:
            cell = cell[: width - 1] + "…"
        out.append(cell.ljust(width) if width else cell)
    return "  ".join(out).rstrip()


def cmd_logs(path: Path, lines: int, follow: bool) -> int:
    try:
        rows = queries.recent(path, max(1, lines))
    except sqlite3.Error as exc:
        print(f"error: cannot read the history at {path}: {exc}", file=sys.stderr)
        return 1
    if not rows and not follow:
        print(f"No requests in the history yet ({path}).")
        return 0
    rows.reverse()
    if not follow:
        print(render_table(LOG_HEADER, [log_row(r) for r in rows]), flush=True)
        return 0
    # following: fixed column widths, since later rows are not known yet
    print(_fixed(LOG_HEADER), flush=True)
    for r in rows:
        print(_fixed(log_row(r)), flush=True)
    last = max((r["id"] for r in rows), default=0)
    try:
        while True:
            time.sleep(0.5)
            try:
                new = queries.recent(path, 1000, after_id=last)
            except sqlite3.Error:
                continue  # trayproxy may be creating the database right now
            for r in new:
                print(_fixed(log_row(r)), flush=True)
                last = r["id"]
    except KeyboardInterrupt:
        return 0


def cmd_usage(path: Path, days: int) -> int:
    try:
        data = queries.usage(path, days)
    except sqlite3.Error as exc:
        print(f"error: cannot read the history at {path}: {exc}", file=sys.stderr)
        return 1
    period = f"Last {days} day{'s' if days != 1 else ''}"
    estimates = False
    for title, rows in (("Today", data["today"]), (period, data["period"])):
        print(f"{title}:")
        if not rows:
            print("  no requests\n")
            continue
        table = render_table(
            USAGE_HEADER,
            [
                (
                    _clean(g["model"], 48),
                    str(g["requests"]),
                    str(g["errors"]),
                    _tokens(g["prompt_tokens"], g.get("estimated")),
                    _tokens(g["completion_tokens"], g.get("estimated")),
                    _ms(g["median_ms"]),
                    _ms(g["p95_ms"]),
                )
                for g in rows
            ],
        )
        print("\n".join("  " + line for line in table.split("\n")) + "\n")
        estimates = estimates or any(g.get("estimated") for g in rows)
    if estimates:
        print(
            "~ includes estimates: for requests whose provider reported no token counts, "
            "trayproxy estimated them from the text."
        )
    return 0


def _tokens(value: int, estimated: int | None) -> str:
    return ("~" if estimated else "") + f"{value:,}"
