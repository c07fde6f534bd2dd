"""The Linux double-click bundle (built by `bash packaging/build.sh`) under a virtual display:
it starts by itself, docks its icon, answers requests, and quits cleanly from its menu."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import config_text, free_port, http
from tests.desktop import ARTIFACTS, NOTIFIER, desktop_session, group_is_gone, wait_for

ROOT = Path(__file__).parent.parent
BUNDLE = Path(os.environ.get("TRAYPROXY_BUNDLE", ROOT / "dist" / "trayproxy" / "trayproxy"))
pytestmark = pytest.mark.timeout(120)


def test_bundle_starts_docks_serves_and_quits(tmp_path: Path, upstream) -> None:
    if os.environ.get("TRAYPROXY_SKIP_BUNDLE_TESTS") == "1":
        pytest.skip("TRAYPROXY_SKIP_BUNDLE_TESTS=1")
    if not BUNDLE.is_file():
        pytest.fail(f"no bundle at {BUNDLE}: build it with `bash packaging/build.sh`")
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(config_text(upstream.url, port=port))
    with desktop_session() as desktop:
        env = {**desktop.env, "TRAYPROXY_HOME": str(home), "PYSTRAY_BACKEND": "gtk"}
        script = f'{NOTIFIER} >/dev/null 2>&1 & exec "{BUNDLE}"'
        started = time.monotonic()
        proc = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script],
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}/v1"

            def serving() -> bool:
                try:
                    return http("GET", base + "/models")[0] == 200
                except OSError:
                    return False

            assert wait_for(serving, 30, interval=0.02), "the bundle did not start serving"
            startup = time.monotonic() - started
            icon = wait_for(lambda: desktop.find_icon("--classname", "^trayproxy$"), 30)
            assert icon, "the bundle's icon did not dock"
            ids = [m["id"] for m in json.loads(http("GET", base + "/models")[2])["data"]]
            assert "nvidia/kimi-k2-thinking" in ids
            status, _, _ = http(
                "POST",
                base + "/chat/completions",
                json.dumps({"model": "nvidia/kimi-k2-thinking", "messages": []}).encode(),
                {"Content-Type": "application/json"},
            )
            assert status == 200 and upstream.last.body["model"] == "moonshotai/kimi-k2-thinking"
            x, y, w, h = icon
            assert desktop.open_menu(x + w // 2, y + h // 2)
            desktop.screenshot("bundle-menu.png")
            desktop.keys("Up", "Return")  # Quit
            assert proc.wait(20) == 0
            assert wait_for(lambda: group_is_gone(proc.pid), 10)
        finally:
            if proc.poll() is None:
                proc.kill()
            output = proc.communicate(timeout=10)[0]
    assert "tray icon ready (backend gtk)" in output, output
    assert "Traceback" not in output
    size = sum(p.stat().st_size for p in BUNDLE.parent.rglob("*") if p.is_file()) / 1e6
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "bundle.txt").write_text(
        f"bundle {BUNDLE.parent}: {size:.0f} MB; start to serving {startup:.2f} s\n"
    )
