"""A real tray icon under Xvfb: it docks, its menu works, Quit ends everything."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import config_text, free_port, http
from tests.desktop import ARTIFACTS, app_command, desktop_session, group_is_gone, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def desktop():
    with desktop_session() as d:
        yield d


def start_app(desktop, tmp_path: Path, config: str, backend: str) -> tuple[subprocess.Popen, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(config)
    opened = tmp_path / "opened.txt"
    env = {
        **desktop.env,
        "TRAYPROXY_HOME": str(home),
        "PYSTRAY_BACKEND": backend,
        "BROWSER": f"sh -c 'echo %s >> {opened}'",
    }
    # gtk needs a DBus session (and shows notifications); xorg runs the app directly
    cmd = app_command() if backend == "gtk" else [sys.executable, "-m", "trayproxy"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, str(opened)


def stop(proc: subprocess.Popen) -> str:
    """End the app and everything it started (bus, notifier); return its output."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    return out or ""


def models(base: str) -> list[str]:
    return [m["id"] for m in json.loads(http("GET", base + "/models")[2])["data"]]


def test_real_tray_menu(desktop, tmp_path: Path, upstream) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    config = config_text(upstream.url, port=port).replace(
        "[server]", "[server]\nwatch_config = false"
    )
    proc, opened = start_app(desktop, tmp_path, config, "gtk")
    output = ""
    try:
        icon = wait_for(lambda: desktop.find_icon("--classname", "^trayproxy$"), 20)
        assert icon, "the tray icon did not dock"
        x, y, w, h = icon
        cx, cy = x + w // 2, y + h // 2
        assert wait_for(lambda: http("GET", base + "/models")[0] == 200, 10)

        # right-click opens the menu; look at it
        assert desktop.open_menu(cx, cy), "right-click did not open the menu"
        desktop.screenshot("tray-menu.png")
        # Copy base URL: the first entry after the status line
        desktop.keys("Down", "Return")
        assert wait_for(lambda: desktop.clipboard().strip() == base, 10), desktop.clipboard()
        # Copy Claude Code setup: two entries further down
        assert desktop.open_menu(cx, cy)
        desktop.keys("Down", "Down", "Down", "Return")
        claude = f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}\n"
        assert wait_for(lambda: claude in desktop.clipboard(), 10), desktop.clipboard()

        # Reload mappings picks up an edit
        home = tmp_path / "home"
        (home / "config.toml").write_text(
            config + '\n[models."added/by-reload"]\nprovider = "fake"\n'
        )
        assert desktop.open_menu(cx, cy)
        desktop.keys("Down", "Down", "Down", "Down", "Down", "Return")
        assert wait_for(lambda: "added/by-reload" in models(base), 10)

        # a left click runs the default entry: the routing log in the browser
        desktop.click(cx, cy, 1)
        assert wait_for(lambda: os.path.exists(opened) and Path(opened).read_text(), 10)
        assert Path(opened).read_text().strip() == f"http://127.0.0.1:{port}/_trayproxy/"

        # Quit: the last entry
        assert desktop.open_menu(cx, cy)
        desktop.keys("Up", "Return")
        assert proc.wait(15) == 0
        # nothing left running: not the bus, not the notifier, not trayproxy
        assert wait_for(lambda: group_is_gone(proc.pid), 10)
    finally:
        output = stop(proc)
    assert "tray icon ready (backend gtk)" in output, output
    assert "Copied: " + base in output
    assert "Mappings reloaded: 6 models (+1)" in output
    assert "Traceback" not in output
    # nothing left running: the port is free again
    with pytest.raises(OSError):
        http("GET", base + "/models")


def test_xorg_tray_without_menu_opens_the_page_on_click(desktop, tmp_path: Path, upstream) -> None:
    port = free_port()
    proc, opened = start_app(desktop, tmp_path, config_text(upstream.url, port=port), "xorg")
    try:
        icon = wait_for(lambda: desktop.find_icon("--class", "^trayproxy$"), 20)
        assert icon, "the xorg tray icon did not dock"
        desktop.screenshot("tray-xorg.png")

        def click_opens_page() -> bool:
            # the icon may be docked a moment before its event loop runs, and the panel may
            # still be moving it: look where it is now, click, and try again
            where = desktop.find_icon("--class", "^trayproxy$") or icon
            desktop.click(where[0] + where[2] // 2, where[1] + where[3] // 2, 1)
            return bool(wait_for(lambda: os.path.exists(opened), 2))

        if not wait_for(click_opens_page, 30, interval=0):
            windows = desktop.windows("--class", "^trayproxy$")
            pytest.fail(
                f"30 s of clicks on the xorg icon at {icon} opened no page; trayproxy windows "
                f"now: {windows}; the app said:\n{stop(proc)}"
            )
        assert Path(opened).read_text().strip() == f"http://127.0.0.1:{port}/_trayproxy/"
        # the page offers the menu's actions
        page = http("GET", f"http://127.0.0.1:{port}/_trayproxy/")[2].decode()
        for label in ("Copy base URL", "Reload mappings", "Open config file"):
            assert label in page
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        output = stop(proc)
    assert "backend xorg" in output
    assert "Traceback" not in output


def test_no_display_keeps_serving_headless(tmp_path: Path, upstream) -> None:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(config_text(upstream.url, port=port))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["TRAYPROXY_HOME"] = str(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trayproxy"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: _ok(f"http://127.0.0.1:{port}/v1/models"), 15)
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        output = stop(proc)
    assert output.count("No system tray available (no graphical display") == 1
    assert "keeps serving without an icon" in output


def _ok(url: str) -> bool:
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False


def test_artifacts_dir_is_ignored() -> None:
    ignored = (Path(__file__).parent.parent / ".gitignore").read_text()
    assert "tests/artifacts/" in ignored
    assert ARTIFACTS.name == "artifacts"


def test_xorg_icon_docks_when_the_tray_host_starts_later(tmp_path: Path, upstream) -> None:
    """At login trayproxy may start before the panel: the icon must still appear."""
    with desktop_session(tray_host=False) as late:
        port = free_port()
        proc, _ = start_app(late, tmp_path, config_text(upstream.url, port=port), "xorg")
        try:
            assert wait_for(lambda: _serving(port), 15)
            time.sleep(2.5)  # trayproxy has looked for a tray host and found none
            assert late.find_icon("--class", "^trayproxy$") is None
            late.start_tray_host()
            assert wait_for(lambda: late.find_icon("--class", "^trayproxy$"), 15), "not docked"
            proc.terminate()
            assert proc.wait(15) == 0
        finally:
            output = stop(proc)
    assert "no tray host is running yet" in output
    assert "Traceback" not in output


def _serving(port: int) -> bool:
    try:
        return http("GET", f"http://127.0.0.1:{port}/v1/models")[0] == 200
    except OSError:
        return False
