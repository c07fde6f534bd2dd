"""A real headless browser for page tests: Debian's chromium + chromedriver via selenium,
offline (no driver download, no background networking)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TRAYPROXY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TRAYPROXY_CHROMEDRIVER", "/usr/bin/chromedriver")


@contextmanager
def chromium(profile: Path, size: str = "1360,900") -> Iterator[object]:
    if os.environ.get("TRAYPROXY_SKIP_BROWSER_TESTS") == "1":
        pytest.skip("TRAYPROXY_SKIP_BROWSER_TESTS=1")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        pytest.fail(
            "the browser tests need " + ", ".join(missing) + ": run `bash scripts/test.sh` "
            "(Debian packages chromium chromium-driver), or set TRAYPROXY_SKIP_BROWSER_TESTS=1."
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        f"--window-size={size}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
