"""The routing history: SQLite in the data folder, batched, pruned, robust."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_KEY, config_text, http, post_json
from trayproxy.config.paths import app_paths
from trayproxy.desktop.app import App
from trayproxy.records import history, migrations, queries
from trayproxy.records.history import History
from trayproxy.records.logbook import RecordDraft, RouteRecord


def draft(model: str = "m", status: int = 200, when: float | None = None, **kw) -> RecordDraft:
    d = RecordDraft(
        endpoint="chat/completions",
        client_model=model,
        provider="p",
        upstream_model="u",
        status=status,
        **kw,
    )
    if when is not None:
        d.time = when
    return d


def record(n: int, **kw):
    return draft(**kw).finish(n, run="test")


def test_written_in_batches_and_read_back(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.start()
    for i in range(1, 1201):
        h.add(record(i, model=f"m{i % 3}", prompt_tokens=1, completion_tokens=2))
    assert h.flush(10)
    h.stop()
    rows = queries.recent(tmp_path / "h.db", 5)
    assert [r["uid"] for r in rows] == [f"test-{i}" for i in range(1200, 1195, -1)]
    assert rows[0]["stream"] is False and rows[0]["rewrites"] == []
    assert len(queries.recent(tmp_path / "h.db", 5000, model="m1")) == 400
    assert queries.get(tmp_path / "h.db", "test-7")["client_model"] == "m1"


def test_concurrent_writes_and_reads(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db", flush_interval=0.05)
    h.start()
    errors: list[BaseException] = []
    counter = iter(range(1, 10**9))
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(300):
            with lock:
                n = next(counter)
            h.add(record(n))

    def reader() -> None:
        try:
            for _ in range(50):
                queries.recent(tmp_path / "h.db", 50)
                queries.usage(tmp_path / "h.db", 7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    time.sleep(0.2)  # let the database exist before the readers start
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert h.flush(10)
    h.stop()
    assert errors == []
    with sqlite3.connect(tmp_path / "h.db") as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 900


def test_retention_prunes_old_rows(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db", days=2)
    h.start()
    now = time.time()
    h.add(record(1, when=now - 3 * 86400))
    h.add(record(2, when=now - 86400))
    h.add(record(3, when=now))
    assert h.flush(5)
    # the writer prunes after its first batch, then hourly
    assert [r["uid"] for r in queries.recent(tmp_path / "h.db", 10)] == ["test-3", "test-2"]
    h.add(record(4, when=now - 5 * 86400))
    assert h.flush(5)
    assert len(queries.recent(tmp_path / "h.db", 10)) == 3  # until the next hourly pruning
    h.stop()
    # a restart (here with a shorter retention from the config) prunes after its first batch
    again = History(tmp_path / "h.db", days=1)
    again.start()
    again.add(record(5, when=now))
    assert again.flush(5)
    again.stop()
    assert [r["uid"] for r in queries.recent(tmp_path / "h.db", 10)] == ["test-5", "test-3"]


def test_a_running_writer_prunes_hourly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "PRUNE_SECONDS", 0.0)  # every batch is an hour later
    h = History(tmp_path / "h.db", days=2)
    h.start()
    now = time.time()
    h.add(record(1, when=now))
    assert h.flush(5)
    h.add(record(2, when=now - 5 * 86400))
    assert h.flush(5)
    h.stop()
    assert [r["uid"] for r in queries.recent(tmp_path / "h.db", 10)] == ["test-1"]


def test_a_damaged_database_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not a database, just garbage " * 200)
    problems: list[str] = []
    h = History(path, on_problem=problems.append)
    h.start()
    h.add(record(1))
    assert h.flush(5)
    h.stop()
    assert problems and "damaged" in problems[0]
    aside = list(tmp_path.glob("h.db.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert [r["uid"] for r in queries.recent(path, 10)] == ["test-1"]


def test_an_unwritable_database_is_reported_not_fatal(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file-not-dir"
        blocker.write_text("x")
        path = blocker / "h.db"  # cannot create a file under a file, even as root
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        path = ro / "h.db"
    problems: list[str] = []
    h = History(path, on_problem=problems.append)
    h.start()
    h.add(record(1))
    assert h.flush(5)  # gives up on the batch without blocking anyone
    h.stop()
    assert problems and "not being saved" in problems[0]


def test_records_wait_for_the_database_to_come_back(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder should be")
    path = blocker / "h.db"
    problems: list[str] = []
    h = History(path, on_problem=problems.append, flush_interval=0.05)
    h.retry_seconds = 0.2
    h.start()
    h.add(record(1))
    h.add(record(2))
    assert h.flush(5) and problems
    blocker.unlink()  # the user fixes it
    h.add(record(3))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(queries.recent(path, 10)) < 3:
        time.sleep(0.05)
    h.stop()
    assert [r["uid"] for r in queries.recent(path, 10)] == ["test-3", "test-2", "test-1"]


def test_restart_keeps_history_and_the_page_api_merges_it(tmp_path: Path, upstream) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url))
    first = App(path, app_paths())
    first.start()
    post_json(first.server.base_url + "/chat/completions", {"model": "nvidia/kimi-k2-thinking"})
    post_json(first.server.base_url + "/chat/completions", {"model": "fake/error-400"})
    first.shutdown(grace=1)

    second = App(path, app_paths())
    second.start()
    try:
        base = second.server.root_url + "/_trayproxy/api"
        post_json(second.server.base_url + "/chat/completions", {"model": "fake/embed"})
        data = json.loads(http("GET", base + "/logs?limit=10")[2])["data"]
        assert [r["client_model"] for r in data] == [
            "fake/embed",
            "fake/error-400",
            "nvidia/kimi-k2-thinking",
        ]
        assert len({r["uid"].split("-")[0] for r in data}) == 2  # two runs
        failed = json.loads(http("GET", base + "/logs?status=error")[2])["data"]
        assert [r["client_model"] for r in failed] == ["fake/error-400"]
        detail = json.loads(http("GET", base + "/logs/" + failed[0]["uid"])[2])
        assert "fake upstream says 400" in detail["error_body"]
        usage = json.loads(http("GET", base + "/usage?days=7")[2])
        by_model = {g["model"]: g for g in usage["period"]}
        assert by_model["nvidia/kimi-k2-thinking"]["prompt_tokens"] == 11
        assert by_model["fake/error-400"]["errors"] == 1
        assert sum(d["requests"] for d in usage["daily"]) == 3
        assert len(usage["daily"]) == 7
    finally:
        second.shutdown(grace=1)
    db = app_paths().data_dir / "history.db"
    assert UPSTREAM_KEY.encode() not in db.read_bytes()


def test_events_stream_pushes_new_records(tmp_path: Path, upstream) -> None:
    import urllib.request

    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url))
    app = App(path, app_paths())
    app.start()
    try:
        resp = urllib.request.urlopen(app.server.root_url + "/_trayproxy/api/events", timeout=10)
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.readline() == b"retry: 2000\n"
        post_json(app.server.base_url + "/chat/completions", {"model": "fake/embed"})
        line = b""
        while not line.startswith(b"data: "):
            line = resp.readline()
        event = json.loads(line[6:])
        assert event["client_model"] == "fake/embed" and event["status"] == 200
        resp.close()
    finally:
        app.shutdown(grace=1)


def test_page_sends_strict_security_headers(proxy) -> None:
    for path in ("/_trayproxy/", "/_trayproxy/static/app.js"):
        status, headers, _ = http("GET", proxy.root_url + path)
        assert status == 200
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trayproxy", *args], capture_output=True, text=True, timeout=60
    )


def test_logs_and_usage_commands(tmp_path: Path) -> None:
    db = app_paths().data_dir / "history.db"
    h = History(db)
    h.start()
    now = time.time()
    h.add(
        record(
            1,
            model="nvidia/kimi-k2-thinking",
            prompt_tokens=100,
            completion_tokens=20,
            ttfb_ms=120.0,
            when=now - 60,
        )
    )
    h.add(record(2, model="bad\nid", status=404, error="not mapped", when=now - 30))
    h.add(
        record(
            3,
            model="nvidia/kimi-k2-thinking",
            prompt_tokens=50,
            completion_tokens=10,
            when=now - 2 * 86400,
        )
    )
    assert h.flush(5)
    h.stop()
    out = run_cli("logs", "-n", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().split("\n")
    assert lines[0].split()[:3] == ["TIME", "CLIENT", "MODEL"]
    assert "nvidia/kimi-k2-thinking" in lines[1] and "100/20" in lines[1]
    assert "bad\\nid" in lines[2] and "404" in lines[2] and "not mapped" in lines[2]
    # aligned columns: STATUS starts at the same place on every line
    col = lines[0].index("STATUS")
    assert lines[1][col : col + 3] == "200" and lines[2][col : col + 3] == "404"

    usage = run_cli("usage", "--days", "7").stdout
    assert "Today:" in usage and "Last 7 days:" in usage
    period = usage.split("Last 7 days:")[1]
    row = next(line for line in period.split("\n") if "nvidia/kimi-k2-thinking" in line)
    assert row.split()[1:5] == ["2", "0", "150", "30"]


def test_logs_follow_prints_new_requests(tmp_path: Path) -> None:
    db = app_paths().data_dir / "history.db"
    h = History(db, flush_interval=0.05)
    h.start()
    h.add(record(1, model="first"))
    assert h.flush(5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trayproxy", "logs", "--follow"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.startswith("TIME")
        assert "first" in proc.stdout.readline()
        h.add(record(2, model="a-much-longer-model-id-than-the-first", status=404))
        assert h.flush(5)
        line = proc.stdout.readline()
        assert "a-much-longer-model-id" in line
        col = header.index("STATUS")
        assert line[col : col + 3] == "404"  # columns stay aligned with the header
    finally:
        proc.terminate()
        proc.wait(10)
        h.stop()


def test_logs_without_history(tmp_path: Path) -> None:
    out = run_cli("logs")
    assert out.returncode == 0 and "No requests in the history yet" in out.stdout


@pytest.mark.parametrize("days", ["0", "-3"])
def test_usage_days_out_of_range_are_refused(days: str) -> None:
    out = run_cli("usage", "--days", days)
    assert out.returncode == 2
    assert f"argument --days: must be between 1 and 3650, not {days}" in out.stderr


def test_usage_for_one_day_says_day() -> None:
    out = run_cli("usage", "--days", "1")
    assert out.returncode == 0
    assert "Last 1 day:" in out.stdout and "Last 1 days" not in out.stdout


def test_odd_records_never_stop_the_writer(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db", flush_interval=0.05)
    h.start()
    h.add(record(1, model="lone \ud800 surrogate"))
    h.add(record(2, prompt_tokens=2**70))
    h.add(record(3, model="after"))
    assert h.flush(5)
    h.stop()
    rows = queries.recent(tmp_path / "h.db", 10)
    assert [r["uid"] for r in rows] == ["test-3", "test-2", "test-1"]
    assert rows[1]["prompt_tokens"] is None
    assert rows[2]["client_model"] == "lone ? surrogate"
    assert rows[2]["attempts"] == []


def test_an_older_database_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE requests (id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL, "
            "time REAL NOT NULL, endpoint TEXT NOT NULL, client_model TEXT, provider TEXT, "
            "upstream_model TEXT, rule TEXT, stream INTEGER NOT NULL, status INTEGER NOT NULL, "
            "ttfb_ms REAL, duration_ms REAL NOT NULL, prompt_tokens INTEGER, "
            "completion_tokens INTEGER, error TEXT, upstream_url TEXT, "
            "rewrites TEXT NOT NULL DEFAULT '[]', error_body TEXT)"
        )
    h = History(path)
    h.start()
    h.add(record(1, attempts=[{"provider": "p", "status": 500}]))
    assert h.flush(5)
    h.stop()
    assert queries.recent(path, 1)[0]["attempts"] == [{"provider": "p", "status": 500}]
    assert queries.recent(path, 1)[0]["tokens_estimated"] is False  # step 3's column
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.VERSION


def test_a_database_from_before_versions_is_adopted(tmp_path: Path) -> None:
    """The release before migrations made the whole table at once and kept no version."""
    path = tmp_path / "h.db"
    with sqlite3.connect(path) as conn:
        for step in migrations.STEPS:
            step(conn)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    h = History(path)
    h.start()
    h.add(record(1))
    assert h.flush(5) and h.problem is None
    h.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.VERSION
    assert [r["uid"] for r in queries.recent(path, 10)] == ["test-1"]


def timed(n: int, duration_ms: float, **kw) -> RouteRecord:
    return dataclasses.replace(record(n, **kw), duration_ms=duration_ms)


def a_day_with_failures(now: float) -> list[RouteRecord]:
    return [
        timed(1, 100.0, model="m", prompt_tokens=10, completion_tokens=5, when=now - 60),
        timed(2, 300.0, model="m", prompt_tokens=1, completion_tokens=1, when=now - 50),
        timed(3, 5.0, model="m", status=404, error="not mapped", when=now - 40),
        # a stream cut off after its first bytes: answered 200, yet failed
        timed(
            4, 9000.0, model="m", error="the stream broke off", completion_tokens=3, when=now - 30
        ),
        timed(5, 20.0, model="m", status=500, when=now - 20),  # an error answer, no message
        timed(6, 200.0, model="other", when=now - 2 * 86400),
    ]


def test_usage_counts_failed_requests_once(tmp_path: Path) -> None:
    now = time.time()
    records = a_day_with_failures(now)
    h = History(tmp_path / "h.db")
    h.start()
    for r in records:
        h.add(r)
    assert h.flush(5)
    h.stop()
    data = queries.usage(tmp_path / "h.db", 7, now)
    [today] = data["today"]
    assert today == {
        "model": "m",
        "provider": "p",
        "requests": 5,
        "errors": 3,  # 404, 500, and the 200 with an error
        "prompt_tokens": 11,
        "completion_tokens": 9,
        "estimated": 0,  # requests whose tokens trayproxy estimated
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost": None,  # no price known: unknown, not 0
        "unpriced": 3,  # those with tokens (the cut-off stream has some); not 404 and 500
        "cost_estimated": 0,
        "median_ms": 100.0,  # of the answered ones only: 100 and 300
        "p95_ms": 300.0,
    }
    assert [g["model"] for g in data["period"]] == ["m", "other"]
    assert data["daily"][-1] == {
        "date": time.strftime("%Y-%m-%d", time.localtime(now)),
        "requests": 5,
        "errors": 3,
        "tokens": 20,
        "estimated": 0,
        "cost": None,
        "unpriced": 3,
        "cost_estimated": 0,
    }
    assert sum(d["requests"] for d in data["daily"]) == 6
    # the same rule filters the log, in the database and in memory
    failed = [r["uid"] for r in queries.recent(tmp_path / "h.db", 10, status="error")]
    assert failed == ["test-5", "test-4", "test-3"]
    answered = [r["uid"] for r in queries.recent(tmp_path / "h.db", 10, status="ok")]
    assert answered == ["test-2", "test-1", "test-6"]  # newest first
    in_memory = [r.uid for r in records if queries.matches(r.to_dict(), None, None, "error")]
    assert sorted(in_memory) == sorted(failed)
    # records never written give the same statistics (a server without a history)
    assert queries.usage_of(records, 7, now) == data


def test_median_and_p95_are_ranks_of_the_answered_durations(tmp_path: Path) -> None:
    """The rank q * (n - 1), rounded half to even, as the statistics always were."""
    now = time.time()
    durations = [float(10 * i) for i in range(1, 22)]
    for n in range(1, len(durations) + 1):
        shuffled = durations[:n][::-1]
        rows = [timed(i, d, when=now - 60) for i, d in enumerate(shuffled, 1)]
        [g] = queries.usage_of(rows, 1, now)["today"]
        assert g["median_ms"] == durations[round(0.5 * (n - 1))], n
        assert g["p95_ms"] == durations[round(0.95 * (n - 1))], n
    assert queries.usage_of([timed(1, 50.0, status=502)], 1, now)["today"][0]["median_ms"] is None


def test_the_page_of_a_server_without_history_counts_the_same_way(proxy) -> None:
    now = time.time()
    for r in a_day_with_failures(now):
        d = draft(r.client_model, r.status, r.time, error=r.error)
        proxy.server.logbook.add(d)
    base = proxy.root_url + "/_trayproxy/api"
    usage = json.loads(http("GET", base + "/usage?days=7")[2])
    by_model = {g["model"]: g for g in usage["period"]}
    assert (by_model["m"]["requests"], by_model["m"]["errors"]) == (5, 3)
    assert usage["daily"][-1]["errors"] == 3
    failed = json.loads(http("GET", base + "/logs?status=error")[2])["data"]
    assert sorted(r["error"] or "" for r in failed) == ["", "not mapped", "the stream broke off"]
    answered = json.loads(http("GET", base + "/logs?status=ok&model=m")[2])["data"]
    assert len(answered) == 2
