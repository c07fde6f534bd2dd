"""The routing-log page in a real headless browser while requests flow through trayproxy."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import chromium
from tests.conftest import config_text, http, post_json
from tests.desktop import ARTIFACTS
from trayproxy.config.paths import app_paths
from trayproxy.desktop.app import App

HOSTILE = '<img src=x onerror="window.__xss=1">'
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app(tmp_path: Path, upstream):
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url))
    app = App(path, app_paths())
    app.start()
    yield app
    app.shutdown(grace=1)


def rows(driver) -> list[list[str]]:
    """The table as the user reads it, in one snapshot (rows are replaced while live)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#log tbody tr')]"
        ".map(tr => [...tr.children].map(td => td.innerText.trim()))"
    )


def wait(driver, predicate, timeout: float = 15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def test_page_live_filters_chart_and_hostile_ids(app: App, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=app.server.base_url, api_key="x", max_retries=0)
    client.chat.completions.create(model="nvidia/kimi-k2-thinking", messages=[], stream=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium(tmp_path / "profile") as driver:
        driver.get(app.server.root_url + "/_trayproxy/")
        wait(driver, lambda d: d.find_element(By.ID, "live").text == "live")
        assert len(rows(driver)) == 1
        driver.execute_script("window.__marker = 'same page'")

        # new requests appear without a reload
        list(
            client.chat.completions.create(
                model="nvidia/kimi-k2-thinking",
                messages=[],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        post_json(app.server.base_url + "/chat/completions", {"model": "fake/error-429"})
        post_json(app.server.base_url + "/chat/completions", {"model": HOSTILE})
        wait(driver, lambda d: len(rows(d)) == 4)
        assert driver.execute_script("return window.__marker") == "same page"
        newest = rows(driver)[0]
        assert newest[1] == HOSTILE  # shown as text
        assert newest[5] == "400"  # spaces are not in any model id
        assert driver.execute_script("return window.__xss") is None
        assert not driver.find_elements(By.CSS_SELECTOR, "#log img")
        stream_row = rows(driver)[3 - 1]
        assert stream_row[0] and rows(driver)[2][4] == "yes"
        assert rows(driver)[2][8] == "11 / 6"

        # the chart and the summary are drawn
        wait(
            driver,
            lambda d: any(
                float(r.get_attribute("height")) > 0
                for r in d.find_elements(By.CSS_SELECTOR, "#chart rect.bar")
            ),
        )
        assert len(driver.find_elements(By.CSS_SELECTOR, "#chart g")) == 7
        wait(driver, lambda d: "nvidia/kimi-k2-thinking" in d.find_element(By.ID, "summary").text)
        driver.save_screenshot(str(ARTIFACTS / "page.png"))

        # a filter
        Select(driver.find_element(By.NAME, "status")).select_by_value("error")
        wait(driver, lambda d: len(rows(d)) == 2)
        assert {r[5] for r in rows(driver)} == {"400", "429"}
        Select(driver.find_element(By.NAME, "status")).select_by_value("")
        Select(driver.find_element(By.NAME, "model")).select_by_value("nvidia/kimi-k2-thinking")
        wait(driver, lambda d: len(rows(d)) == 2)
        assert {r[1] for r in rows(driver)} == {"nvidia/kimi-k2-thinking"}
        # live rows respect the filter too
        post_json(app.server.base_url + "/chat/completions", {"model": "fake/embed"})
        client.chat.completions.create(model="nvidia/kimi-k2-thinking", messages=[])
        wait(driver, lambda d: len(rows(d)) == 3)
        assert {r[1] for r in rows(driver)} == {"nvidia/kimi-k2-thinking"}

        # the detail view of a failed request
        Select(driver.find_element(By.NAME, "model")).select_by_value("fake/error-429")
        wait(driver, lambda d: len(rows(d)) == 1)
        driver.find_element(By.CSS_SELECTOR, "#log tbody tr").click()
        wait(driver, lambda d: d.find_element(By.ID, "detail").is_displayed())
        detail = driver.find_element(By.ID, "detail").text
        assert "fake upstream says 429" in driver.find_element(By.ID, "detail-body").text
        assert "model: fake/error-429 → error-429" in detail
        assert "routed by provider prefix 'fake/'" in detail
        assert "added headers: authorization" in detail
        assert not driver.find_element(By.ID, "detail-attempts-title").is_displayed()
        assert "http://127.0.0.1:" in detail  # the upstream URL
        time.sleep(0.3)
        driver.save_screenshot(str(ARTIFACTS / "page-detail.png"))


def test_page_shows_profile_rewrites_and_mapping_health(tmp_path: Path) -> None:
    from tests.dialect_upstream import DialectUpstream
    from tests.test_dialects import config_text as dialect_config
    from tests.test_dialects import run_agent

    fake = DialectUpstream().start()
    text = dialect_config(fake.url) + (
        '\n[models."nvidia/kimi-k1"]\nprovider = "nvidia"\nmodel = "kimi-k1-retired"\n'
    )
    path = tmp_path / "config.toml"
    path.write_text(text)
    app = App(path, app_paths())
    app.start()
    try:
        code, _, stderr = run_agent(app.server.base_url, "nvidia/kimi-k2-thinking")
        assert code == 0, stderr
        with chromium(tmp_path / "profile") as driver:
            driver.get(app.server.root_url + "/_trayproxy/")
            wait(driver, lambda d: len(rows(d)) == 2)
            driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")[0].click()
            wait(driver, lambda d: d.find_element(By.ID, "detail").is_displayed())
            changed = driver.find_element(By.ID, "detail-rewrites").text
            assert "reasoning_content restored for 1 turn" in changed

            driver.find_element(By.ID, "detail-close").click()
            driver.find_element(By.ID, "check-mappings").click()
            wait(driver, lambda d: d.find_element(By.ID, "health").is_displayed())
            health = driver.execute_script(
                "return Object.fromEntries([...document.querySelectorAll('#health-table tbody tr')]"
                ".map(tr => [tr.children[0].innerText, tr.children[2].innerText]))"
            )
            assert health["nvidia/kimi-k2-thinking"] == "ok"
            assert health["nvidia/kimi-k1"] == "not listed"
            assert "1 mapping(s) need attention" in driver.find_element(By.ID, "notice").text
            driver.save_screenshot(str(ARTIFACTS / "page-health.png"))
    finally:
        app.shutdown(grace=1)
        fake.stop()


def test_keys_panel_stores_a_key_that_the_next_request_uses(
    tmp_path: Path, upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Keys panel in a real browser: it shows which providers need a key, stores one in
    the (file-backed) keychain, never shows it back, and the next request carries it."""
    import keyring

    from tests.file_keyring import FileKeyring

    monkeypatch.setenv("TRAYPROXY_TEST_KEYRING", str(tmp_path / "keychain.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    path = tmp_path / "config.toml"
    path.write_text(
        "[server]\nport = 0\n"
        f'[providers.fake]\nbase_url = "{upstream.url}/v1"\napi_key = "keyring:fake"\n'
        '[providers.groq]\nbase_url = "https://api.groq.com/openai/v1"\n'
        '[providers.mistral]\nbase_url = "https://api.mistral.ai/v1"\n'
        'api_key = "env:TRAYPROXY_TEST_UNSET_KEY"\n'
        '[providers.ollama]\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[models."fake/m"]\nprovider = "fake"\nmodel = "m"\n'
    )
    app = App(path, app_paths())
    app.start()
    try:
        assert app.status.endswith("· 3 providers need a key")
        client = openai.OpenAI(base_url=app.server.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError, match="trayproxy key set fake"):
            client.chat.completions.create(model="fake/m", messages=[])
        assert upstream.requests == []  # no key: the prompt never left
        with chromium(tmp_path / "profile") as driver:
            driver.get(app.server.root_url + "/_trayproxy/")
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr"))
            table = driver.execute_script(
                "return Object.fromEntries([...document.querySelectorAll('#keys-table tbody tr')]"
                ".map(tr => [tr.dataset.provider, [...tr.children].map(td => td.innerText)]))"
            )
            assert table["fake"][2] == "needs a key"
            assert table["groq"][2] == "needs a key"  # hosted, no api_key line, none found
            assert table["ollama"][2] == "no key needed"  # a server on this machine
            assert table["mistral"][2] == "needs a key"
            assert "remove that api_key line" in table["mistral"][3]  # no form: env: in config
            assert driver.find_element(By.ID, "keys-state").text == "3 providers need a key"

            field = driver.find_element(
                By.CSS_SELECTOR, '#keys-table tr[data-provider="fake"] input'
            )
            assert field.get_attribute("type") == "password"
            field.send_keys("sk-typed-in-the-page")
            field.submit()
            wait(driver, lambda d: "trayproxy uses it now" in d.find_element(By.ID, "notice").text)
            wait(
                driver,
                lambda d: d.find_element(By.ID, "keys-state").text == "2 providers need a key",
            )
            assert "sk-typed-in-the-page" not in driver.page_source
            typed = driver.execute_script(
                "return [...document.querySelectorAll('#keys-table input')].map(i => i.value)"
            )
            assert typed and set(typed) == {""}  # the key left the page with the request
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "page-keys.png"))
        assert keyring.get_password("trayproxy", "fake") == "sk-typed-in-the-page"
        assert app.status.endswith("· 2 providers need a key")
        client.chat.completions.create(model="fake/m", messages=[])
        assert upstream.last.headers["Authorization"] == "Bearer sk-typed-in-the-page"
        status, _, listed = http("GET", app.server.root_url + "/_trayproxy/api/keys")
        assert status == 200 and b"sk-typed" not in listed
    finally:
        app.shutdown(grace=1)
        keyring.set_keyring(previous)


def test_estimated_token_counts_are_marked_on_the_page(app: App, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=app.server.base_url, api_key="x", max_retries=0)
    client.chat.completions.create(
        model="fake/no-usage", messages=[{"role": "user", "content": "hi"}]
    )
    client.chat.completions.create(model="nvidia/kimi-k2-thinking", messages=[])
    with chromium(tmp_path / "profile") as driver:
        driver.get(app.server.root_url + "/_trayproxy/")
        wait(driver, lambda d: len(rows(d)) == 2)
        counted, estimated = rows(driver)
        assert counted[8] == "11 / 6"
        assert estimated[8].startswith("~") and estimated[8] != "~–"
        cell = driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")[1].find_elements(
            By.TAG_NAME, "td"
        )[8]
        assert "the provider reported no token counts" in cell.get_attribute("title")
        wait(driver, lambda d: d.find_element(By.ID, "estimate-note").is_displayed())
        summary = driver.find_element(By.ID, "summary").text
        assert "fake/no-usage" in summary and "~" in summary
