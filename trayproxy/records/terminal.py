"""``trayproxy logs`` and ``trayproxy usage``: the routing history in a terminal."""

from __future__ import annotations

import math
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from trayproxy.config.model import ConfigError
from trayproxy.config.parse import read
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
USAGE_HEADER = (
    "MODEL",
    "REQUESTS",
    "ERRORS",
    "TOKENS IN",
    "TOKENS OUT",
    "COST",
    "MEDIAN",
    "P95",
)
DAY_HEADER = ("DATE", "REQUESTS", "TOKENS", "COST")


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


def cmd_usage(path: Path, days: int, config: Path | None = None) -> int:
    """Per model today and for the period, then per day; ``config`` for the daily budget."""
    try:
        data = queries.usage(path, days)
    except sqlite3.Error as exc:
        print(f"error: cannot read the history at {path}: {exc}", file=sys.stderr)
        return 1
    period = f"Last {days} day{'s' if days != 1 else ''}"
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
                    _tokens(g["prompt_tokens"], g["estimated"]),
                    _tokens(g["completion_tokens"], g["estimated"]),
                    cost_text(g),
                    _ms(g["median_ms"]),
                    _ms(g["p95_ms"]),
                )
                for g in rows
            ],
        )
        print(_indented(table))
        if title == "Today":
            spent = _today(data["today_cost"], _budget(config))
            print(f"  Cost today: {spent}\n" if spent else "")
        else:
            print()
    busy = [d for d in data["daily"] if d["requests"]]
    if busy:
        print("Per day:")
        print(_indented(render_table(DAY_HEADER, [_day(d) for d in busy])) + "\n")
    shown = data["today"] + data["period"] + busy
    if any(g["unpriced"] and g["cost"] is not None for g in shown):
        print(
            "+? plus requests without a known price for their model: their cost is not in the sum."
        )
    if any(g["cost"] is None and g["unpriced"] for g in shown):
        print(
            "unknown: no price is known for the model (give it a price in config.toml); "
            "its cost is not counted as $0."
        )
    if any(g["estimated"] for g in shown):
        print(
            "~ includes estimates: for requests whose provider reported no token counts, "
            "trayproxy estimated them from the text."
        )
    return 0


def _indented(table: str) -> str:
    return "\n".join("  " + line for line in table.split("\n"))


def _tokens(value: int, estimated: int | None) -> str:
    return ("~" if estimated else "") + f"{value:,}"


def _day(d: dict[str, Any]) -> tuple[str, ...]:
    return (d["date"], str(d["requests"]), _tokens(d["tokens"], d["estimated"]), cost_text(d))


def money(dollars: float) -> str:
    """Cents from a dollar up ("$12.34"); below, four decimals ("$0.0042", "$0.50": no
    trailing zeros past the cents), more where four would hide a tiny sum ("$0.000012");
    "$0" only for what is 0 (a free model)."""
    if dollars < 0:
        return "-" + money(-dollars)
    if dollars == 0:
        return "$0"
    if round(dollars, 4) >= 1:
        return f"${dollars:,.2f}"
    places = max(4, 1 - math.floor(math.log10(dollars)))  # two significant digits at least
    whole, _, decimals = f"{dollars:.{places}f}".partition(".")
    return f"${whole}.{decimals.rstrip('0').ljust(2, '0')}"


def cost_text(g: dict[str, Any], long: bool = False) -> str:
    """A usage row's cost: "unknown" when none of its requests had a price (never $0), the
    sum and "+?" when some had not (``long``: "+ 2 without a price"), "~" when some of it
    was priced from estimated token counts, "-" when there was nothing to price."""
    if g["cost"] is None:
        if not g["unpriced"]:
            return "-"
        return f"unknown ({g['unpriced']} without a price)" if long else "unknown"
    text = ("~" if g["cost_estimated"] else "") + money(g["cost"])
    if not g["unpriced"]:
        return text
    return f"{text} + {g['unpriced']} without a price" if long else text + " +?"


def _today(spent: dict[str, Any], budget: float | None) -> str:
    """Today's cost, held against the daily budget; "" when there was nothing to price."""
    if spent["cost"] is None and not spent["unpriced"]:
        return ""
    text = cost_text(spent, long=True)
    if budget is None:
        return text
    if spent["cost"] is not None and spent["cost"] > budget:
        return f"{text}, over the {money(budget)} daily budget"
    return f"{text}{', ' if spent['unpriced'] else ' '}of the {money(budget)} daily budget"


def _budget(config: Path | None) -> float | None:
    """``[costs] daily_budget`` from the config file, if it can be read: the usage is worth
    printing without it."""
    if config is None:
        return None
    try:
        return read(config.read_text(encoding="utf-8"), file=str(config)).costs.daily_budget
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
