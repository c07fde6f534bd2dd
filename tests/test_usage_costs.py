"""What requests cost, per model and per day: in the usage statistics, ``trayproxy usage``
and the page. A price that is not known is "unknown", never $0."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import config_text, http
from trayproxy.core.prices import Price
from trayproxy.records import queries, terminal
from trayproxy.records.history import History
from trayproxy.records.logbook import RecordDraft, RouteRecord

PRICE = Price(input=1.0, output=2.0)  # dollars per million tokens
DAY = 86400


def draft(model: str, when: float, status: int = 200, **kw) -> RecordDraft:
    d = RecordDraft("chat/completions", client_model=model, provider="p", status=status, **kw)
    d.time = when
    return d


def week_drafts(now: float) -> list[RecordDraft]:
    """Today: a priced model, one partly priced, one never priced, a free one, one that only
    failed; yesterday: a priced request counted from estimated tokens."""
    today, yesterday = now - 60, now - DAY
    return [
        # $0.50 + $0.50 = $1.00
        draft("priced", today, prompt_tokens=500_000, completion_tokens=0, price=PRICE),
        draft(
            "priced",
            today,
            prompt_tokens=200_000,
            completion_tokens=150_000,
            cached_tokens=50_000,
            reasoning_tokens=40_000,
            price=PRICE,
        ),
        # $0.0015 known, one request with tokens and no price, one failed without tokens
        draft("partly", today, prompt_tokens=1_000, completion_tokens=250, price=PRICE),
        draft("partly", today, prompt_tokens=3_000, completion_tokens=10),
        draft("partly", today, status=502, error="bad gateway", price=PRICE),
        draft("never", today, prompt_tokens=100, completion_tokens=20),
        draft("never", today, prompt_tokens=100, completion_tokens=20, reasoning_tokens=7),
        draft("free", today, prompt_tokens=9_000, completion_tokens=900, price=Price(0, 0)),
        draft("failed", today, status=500, price=PRICE),
        # $0.0032, from token counts trayproxy estimated
        draft(
            "priced",
            yesterday,
            prompt_tokens=3_000,
            completion_tokens=100,
            tokens_estimated=True,
            price=PRICE,
        ),
    ]


def a_week(now: float) -> list[RouteRecord]:
    return [d.finish(n, run="t") for n, d in enumerate(week_drafts(now), 1)]


def stored(path: Path, records: list[RouteRecord]) -> Path:
    h = History(path)
    h.start()
    for r in records:
        h.add(r)
    assert h.flush(5)
    h.stop()
    return path


def by_model(rows: list[dict]) -> dict[str, dict]:
    return {g["model"]: g for g in rows}


def test_cost_per_model_keeps_unknown_apart_from_zero() -> None:
    now = time.time()
    data = queries.usage_of(a_week(now), 7, now)
    today = by_model(data["today"])
    assert today["priced"]["cost"] == pytest.approx(1.0)
    assert today["priced"]["unpriced"] == 0
    assert (today["priced"]["cached_tokens"], today["priced"]["reasoning_tokens"]) == (
        50_000,
        40_000,
    )
    # partly priced: the known sum and how many had tokens but no price (the failed one
    # without tokens cost nothing and is not counted)
    assert today["partly"]["cost"] == pytest.approx(0.0015)
    assert today["partly"]["unpriced"] == 1
    # never priced: no sum at all, not 0
    assert today["never"]["cost"] is None and today["never"]["unpriced"] == 2
    assert today["never"]["reasoning_tokens"] == 7
    # a free model's cost is a real 0
    assert today["free"]["cost"] == 0 and today["free"]["unpriced"] == 0
    # failed without tokens: nothing to price, nothing unpriced
    assert today["failed"]["cost"] is None and today["failed"]["unpriced"] == 0
    # over the period, yesterday's estimated request is in the sum and marked
    period = by_model(data["period"])
    assert period["priced"]["cost"] == pytest.approx(1.0032)
    assert (period["priced"]["cost_estimated"], today["priced"]["cost_estimated"]) == (1, 0)
    assert data["today_cost"] == {
        "cost": pytest.approx(1.0015),
        "unpriced": 3,
        "cost_estimated": 0,
    }


def test_cost_per_day() -> None:
    now = time.time()
    daily = queries.usage_of(a_week(now), 7, now)["daily"]
    assert len(daily) == 7
    assert daily[-1]["date"] == time.strftime("%Y-%m-%d", time.localtime(now))
    today, yesterday = daily[-1], daily[-2]
    assert today["requests"] == 9
    assert today["tokens"] == 500_000 + 350_000 + 1_250 + 3_010 + 240 + 9_900
    assert today["cost"] == pytest.approx(1.0015) and today["unpriced"] == 3
    assert yesterday["tokens"] == 3_100 and yesterday["estimated"] == 1
    assert yesterday["cost"] == pytest.approx(0.0032) and yesterday["cost_estimated"] == 1
    assert yesterday["unpriced"] == 0
    # a day without requests has no cost: null, not 0
    assert daily[0] == {
        "date": daily[0]["date"],
        "requests": 0,
        "errors": 0,
        "tokens": 0,
        "estimated": 0,
        "cost": None,
        "unpriced": 0,
        "cost_estimated": 0,
    }


def test_the_history_database_answers_the_same(tmp_path: Path) -> None:
    now = time.time()
    records = a_week(now)
    path = stored(tmp_path / "h.db", records)
    data = queries.usage(path, 7, now)
    assert data == queries.usage_of(records, 7, now)
    assert by_model(data["today"])["never"]["cost"] is None
    # and the record keeps what the detail view shows
    [row] = [r for r in queries.recent(path, 20) if r["cached_tokens"]]
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (50_000, 40_000)
    assert row["cost"] == pytest.approx(0.5)


def test_an_empty_history_costs_nothing_known(tmp_path: Path) -> None:
    data = queries.usage(tmp_path / "none.db", 3)
    assert data["today_cost"] == {"cost": None, "unpriced": 0, "cost_estimated": 0}
    assert all(d["cost"] is None for d in data["daily"])


@pytest.mark.parametrize(
    ("dollars", "shown"),
    [
        (0, "$0"),
        (12.3412, "$12.34"),
        (1234.5, "$1,234.50"),
        (1.0, "$1.00"),
        (0.99996, "$1.00"),
        (0.9999, "$0.9999"),
        (0.0042, "$0.0042"),
        (0.01234, "$0.0123"),
        (0.5, "$0.50"),
        (0.0000123, "$0.000012"),  # never "$0.0000" for what is not 0
    ],
)
def test_money(dollars: float, shown: str) -> None:
    assert terminal.money(dollars) == shown


def usage_lines(tmp_path: Path, capsys, budget: float | None, days: int = 7) -> str:
    now = time.time()
    path = stored(tmp_path / "h.db", a_week(now))
    config = tmp_path / "config.toml"
    config.write_text("" if budget is None else f"[costs]\ndaily_budget = {budget}\n")
    assert terminal.cmd_usage(path, days, config) == 0
    return capsys.readouterr().out


def row(out: str, section: str, first: str) -> list[str]:
    """The cells of the row that starts with ``first`` in a section of the output."""
    part = out.split(section + ":\n")[1].split("\n\n")[0]
    [line] = [ln for ln in part.splitlines() if ln.split()[0] == first]
    return line.split("  ")


def cells(out: str, section: str, first: str) -> list[str]:
    return [c.strip() for c in row(out, section, first) if c.strip()]


def test_usage_command_shows_cost_unknown_and_per_day(tmp_path: Path, capsys) -> None:
    out = usage_lines(tmp_path, capsys, budget=None)
    header = cells(out, "Today", "MODEL")
    assert header[5] == "COST"
    assert cells(out, "Today", "priced")[5] == "$1.00"
    assert cells(out, "Today", "partly")[5] == "$0.0015 +?"
    assert cells(out, "Today", "never")[5] == "unknown"
    assert cells(out, "Today", "free")[5] == "$0"
    assert cells(out, "Today", "failed")[5] == "-"
    # from estimated tokens: marked like the tokens
    assert cells(out, "Last 7 days", "priced")[3:6] == ["~703,000", "~150,100", "~$1.00"]
    assert "Cost today: $1.00 + 3 without a price\n" in out
    yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - DAY))
    today = time.strftime("%Y-%m-%d", time.localtime())
    assert cells(out, "Per day", "DATE") == ["DATE", "REQUESTS", "TOKENS", "COST"]
    assert cells(out, "Per day", yesterday) == [yesterday, "1", "~3,100", "~$0.0032"]
    assert cells(out, "Per day", today)[1:] == ["9", "864,400", "$1.00 +?"]
    assert len(out.split("Per day:\n")[1].split("\n\n")[0].splitlines()) == 3  # busy days only
    assert "+? plus requests without a known price" in out
    assert "unknown: no price is known for the model" in out
    assert not [c for c in cells(out, "Last 7 days", "never") if "$" in c]


def test_usage_command_holds_today_against_the_budget(tmp_path: Path, capsys) -> None:
    out = usage_lines(tmp_path, capsys, budget=5)
    assert "Cost today: $1.00 + 3 without a price, of the $5.00 daily budget\n" in out
    out = usage_lines(tmp_path / "again", capsys, budget=0.5)
    assert "Cost today: $1.00 + 3 without a price, over the $0.50 daily budget\n" in out


def test_usage_command_without_prices_says_unknown_not_zero(tmp_path: Path, capsys) -> None:
    now = time.time()
    records = [
        draft("m", now - 60, prompt_tokens=10, completion_tokens=5).finish(1, run="t"),
        draft("m", now - 50, status=429).finish(2, run="t"),
    ]
    assert terminal.cmd_usage(stored(tmp_path / "h.db", records), 1) == 0
    out = capsys.readouterr().out
    assert cells(out, "Today", "m")[5] == "unknown"
    assert "Cost today: unknown (1 without a price)\n" in out
    tables = out.split("\nunknown:")[0]  # the note under them says it is not $0
    assert "$" not in tables and "+?" not in out


def test_usage_command_with_nothing_to_price(tmp_path: Path, capsys) -> None:
    """Only failed requests without tokens: no cost line, no "unknown", no $0."""
    now = time.time()
    records = [draft("m", now - 60, status=500).finish(1, run="t")]
    assert terminal.cmd_usage(stored(tmp_path / "h.db", records), 1) == 0
    out = capsys.readouterr().out
    assert cells(out, "Today", "m")[5] == "-"
    assert "Cost today" not in out and "unknown" not in out and "$" not in out


def test_page_api_carries_costs_and_the_budget(tmp_path: Path, upstream, started) -> None:
    from trayproxy.config.parse import parse

    server = started(parse(config_text(upstream.url, extra="[costs]\ndaily_budget = 2.5\n")))
    for d in week_drafts(time.time()):
        server.logbook.add(d)
    status, _, body = http("GET", server.root_url + "/_trayproxy/api/usage?days=7")
    assert status == 200
    data = json.loads(body)
    assert data["daily_budget"] == 2.5
    models = by_model(data["today"])
    assert models["never"]["cost"] is None and models["free"]["cost"] == 0
    assert data["today_cost"]["cost"] == pytest.approx(1.0015)


# ---------------------------------------------------------------- the page


@pytest.fixture
def priced_app(tmp_path: Path, upstream):
    from trayproxy.config.paths import app_paths
    from trayproxy.desktop.app import App

    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url, extra="[costs]\ndaily_budget = 0.5\n"))
    app = App(path, app_paths())
    app.start()
    now = time.time()
    drafts = [
        draft("fake/priced", now - 90, prompt_tokens=500_000, completion_tokens=0, price=PRICE),
        draft(
            "fake/priced",
            now - 80,
            prompt_tokens=200_000,
            completion_tokens=150_000,
            cached_tokens=50_000,
            reasoning_tokens=40_000,
            price=PRICE,
            key_label="NVIDIA_API_KEY_2",
            keys_skipped=["NVIDIA_API_KEY: rate-limited (429), ready in 40 s"],
        ),
        draft("fake/partly", now - 70, prompt_tokens=1_000, completion_tokens=250, price=PRICE),
        draft("fake/partly", now - 60, prompt_tokens=3_000, completion_tokens=10),
        draft("fake/never", now - 50, prompt_tokens=100, completion_tokens=20),
        draft("fake/free", now - 40, prompt_tokens=9_000, completion_tokens=900, price=Price(0, 0)),
        draft("fake/failed", now - 30, status=500, price=PRICE),
        draft("fake/priced", now - DAY, prompt_tokens=3_000, completion_tokens=100, price=PRICE),
    ]
    for d in drafts:
        app.server.logbook.add(d)
    yield app
    app.shutdown(grace=1)


@pytest.mark.timeout(120)
def test_page_shows_cost_unknown_per_day_and_the_budget(priced_app, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import chromium

    def wait(driver, predicate):
        return WebDriverWait(driver, 15, poll_frequency=0.1).until(lambda d: predicate(d))

    def table(driver, selector: str) -> list[list[str]]:
        return driver.execute_script(
            f"return [...document.querySelectorAll('{selector} tr')]"
            ".map(tr => [...tr.children].map(td => td.innerText.trim().replace(/\\s+/g, ' ')))"
        )

    with chromium(tmp_path / "profile") as driver:
        driver.get(priced_app.server.root_url + "/_trayproxy/")
        wait(driver, lambda d: len(table(d, "#summary tbody")) == 5)
        header = table(driver, "#summary thead")[0]
        cost = header.index("Cost")
        summary = {r[0]: r[cost] for r in table(driver, "#summary tbody")}
        assert summary == {
            "fake/priced": "$1.00",
            "fake/partly": "$0.0015 + 1 without a price",
            "fake/never": "unknown",
            "fake/free": "$0",
            "fake/failed": "–",
        }
        spend = driver.find_element(By.ID, "today-cost")
        assert spend.text == "Today: $1.00 + 2 without a price, over the $0.50 daily budget"
        assert "over" in spend.get_attribute("class")
        red = driver.execute_script("return getComputedStyle(arguments[0]).color", spend)
        muted = driver.execute_script(
            "return getComputedStyle(document.querySelector('p.hint')).color"
        )
        assert red != muted
        assert driver.find_element(By.ID, "cost-note").is_displayed()

        daily = table(driver, "#daily tbody")
        assert len(daily) == 7
        assert daily[0][1:] == ["7", "864,280", "$1.00 + 2 without a price"]  # today first
        assert daily[1][1:] == ["1", "3,100", "$0.0032"]
        assert daily[2][1:] == ["0", "0", "–"]
        assert "$0" not in " ".join(" ".join(r) for r in daily[2:])
        tips = [
            t.get_attribute("textContent")
            for t in driver.find_elements(By.CSS_SELECTOR, "#chart title")
        ]
        assert tips[-1].endswith("cost $1.00 + 2 without a price")

        # the detail of the request that a second key served
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log tbody tr")) == 8)
        rows = driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")
        [served] = [r for r in rows if "150,000" in r.text]
        served.click()
        wait(driver, lambda d: d.find_element(By.ID, "detail").is_displayed())
        fields = driver.find_element(By.ID, "detail-fields").text
        assert "Cost\n$0.50" in fields
        assert "Cached tokens\n50,000 of the prompt" in fields
        assert "Reasoning tokens\n40,000" in fields
        assert "Key\nNVIDIA_API_KEY_2" in fields
        assert driver.find_element(By.ID, "detail-skipped-title").is_displayed()
        skipped = driver.find_element(By.ID, "detail-skipped").text
        assert skipped == "NVIDIA_API_KEY: rate-limited (429), ready in 40 s"

        # a request whose model has no price
        driver.find_element(By.ID, "detail-close").click()
        [never] = [r for r in rows if "fake/never" in r.text]
        never.click()
        wait(driver, lambda d: "fake/never" in d.find_element(By.ID, "detail-fields").text)
        fields = driver.find_element(By.ID, "detail-fields").text
        assert "Cost\nunknown" in fields and "Key\n" not in fields
        assert not driver.find_element(By.ID, "detail-skipped-title").is_displayed()


def test_the_usage_command_reads_the_budget_from_the_config(tmp_path: Path) -> None:
    from trayproxy.config.paths import app_paths

    paths = app_paths()  # in TRAYPROXY_HOME, set for every test
    stored(paths.data_dir / "history.db", a_week(time.time()))
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)

    def usage() -> str:
        out = subprocess.run(
            [sys.executable, "-m", "trayproxy", "usage", "--days", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    paths.config_file.write_text("[costs]\ndaily_budget = 5\n")
    assert "Cost today: $1.00 + 3 without a price, of the $5.00 daily budget\n" in usage()
    # a config that cannot be read leaves the budget out, not the usage
    paths.config_file.write_text("[costs\n")
    assert "Cost today: $1.00 + 3 without a price\n" in usage()
