"""Opening the config file or the log folder: a failure said in words (never "opened" when
nothing opened), and no opener left behind as a zombie. A fake ``xdg-open`` on PATH."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import config_text, http
from trayproxy.config.paths import app_paths
from trayproxy.desktop import system
from trayproxy.desktop.app import App

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xdg-open")


def fake_opener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    opener = folder / "xdg-open"
    opener.write_text("#!/bin/sh\n" + script)
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return folder


def test_an_opener_that_finds_no_application_is_a_failure(tmp_path, monkeypatch) -> None:
    fake_opener(tmp_path, monkeypatch, "echo 'xdg-open: no method available' >&2\nexit 3\n")
    ok, message = system.open_path(tmp_path / "config.toml", edit=True)
    assert not ok
    assert (
        message == f"could not open {tmp_path / 'config.toml'}: no application is set up to open it"
    )


def test_an_opener_that_succeeds_is_opened(tmp_path, monkeypatch) -> None:
    fake_opener(tmp_path, monkeypatch, "exit 0\n")
    assert system.open_path(tmp_path) == (True, f"opened {tmp_path}")


def test_an_opener_that_stays_is_opened_and_reaped(tmp_path, monkeypatch) -> None:
    """Some xdg-open fallbacks run the application in the foreground."""
    monkeypatch.setattr(system, "LAUNCH_WAIT", 0.2)
    fake_opener(tmp_path, monkeypatch, f"echo $$ > {tmp_path}/pid\nsleep 1\n")
    assert system.open_path(tmp_path)[0]
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the opener was left as a zombie"


def test_the_page_says_why_the_config_did_not_open(tmp_path, monkeypatch, upstream) -> None:
    fake_opener(tmp_path, monkeypatch, "exit 4\n")
    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url))
    app = App(path, app_paths())  # the real desktop module
    app.start()
    try:
        status, _, body = http(
            "POST",
            app.server.root_url + "/_trayproxy/api/actions/open_config",
            b"{}",
            {"Content-Type": "application/json"},
        )
        assert status == 200
        assert json.loads(body) == {
            "ok": False,
            "message": f"could not open {path}: the application could not open it",
        }
    finally:
        app.shutdown(grace=1)
