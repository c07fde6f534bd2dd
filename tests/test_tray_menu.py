"""The tray adapter on pystray's dummy backend: the real menu objects, no display."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

os.environ["PYSTRAY_BACKEND"] = "dummy"  # before pystray is imported anywhere in this process

import pystray
from PIL import Image

from tests.test_app import Desktop
from trayproxy.config.paths import app_paths
from trayproxy.desktop import tray as tray_module
from trayproxy.desktop.app import App
from trayproxy.desktop.icons import ERROR_ICON, ICON, asset

ROOT = Path(__file__).parent.parent


@pytest.fixture
def app(tmp_path: Path, upstream):
    from tests.conftest import config_text

    path = tmp_path / "config.toml"
    path.write_text(config_text(upstream.url))
    app = App(path, app_paths(), desktop=Desktop())
    yield app
    app.shutdown(grace=1)


def labels(icon) -> list[str]:
    return [str(item.text) if item.text else "---" for item in icon.menu.items]


def test_menu_items_and_their_actions(app: App) -> None:
    app.start()
    t = tray_module.Tray(app, pystray, Image)
    assert t.backend == "dummy"
    items = list(t.icon.menu.items)
    shown = [i.text for i in items if i is not pystray.Menu.SEPARATOR]
    assert shown == [
        f"Serving {app.server.base_url} · 5 models · 1 provider needs a key",
        "Copy base URL",
        "Copy Continue config",
        "Copy Claude Code setup",
        "Copy Codex config",
        "Reload mappings",
        "Recent routing log",
        "Open config file",
        "Open log folder",
        "Start at login",
        "Quit",
    ]
    status = items[0]
    assert not status.enabled
    default = [i.text for i in items if getattr(i, "default", False)]
    assert default == ["Recent routing log"]
    by_text = {i.text: i for i in items if i is not pystray.Menu.SEPARATOR}
    by_text["Copy base URL"](t.icon)
    assert app.desktop.calls[-1] == ("copy", app.server.base_url)
    by_text["Recent routing log"](t.icon)  # runs on a worker thread
    deadline = time.monotonic() + 5
    while ("url", app.server.root_url + "/_trayproxy/") not in app.desktop.calls:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    by_text["Quit"](t.icon)
    assert app.quit_requested.is_set()


def test_icon_follows_the_state(app: App, upstream) -> None:
    import socket

    from tests.conftest import config_text

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        app.config_path.write_text(config_text(upstream.url, port=holder.getsockname()[1]))
        app.start()
        t = tray_module.Tray(app, pystray, Image)
        assert t._image() is t.images[ERROR_ICON]
        assert t.icon.menu.items[0].text.startswith("Port ")
        assert [i.text for i in t.icon.menu.items if getattr(i, "default", False)] == [
            "Open config file"
        ]
    app.config_path.write_text(config_text(upstream.url))
    app.dispatch("reload")
    t.refresh()
    assert t._image() is t.images[ICON]
    assert t.icon.menu.items[0].text.startswith("Serving ")


def test_a_failing_action_never_escapes_the_menu(app: App) -> None:
    app.start()

    class Broken(Desktop):
        def copy_text(self, text: str):
            raise OSError("clipboard exploded")

    app.desktop = Broken()
    t = tray_module.Tray(app, pystray, Image)
    notices = []
    app.set_notifier(notices.append)
    t.click("copy_base_url")  # no exception
    t.click("no-such-command")
    assert any("clipboard exploded" in n.message for n in notices)


def test_no_display_means_no_tray(app: App, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app.start()
    caplog.set_level("WARNING")
    assert tray_module.run(app) is False
    assert "No system tray available (no graphical display" in caplog.text
    assert app.serving  # still serving


def test_icons_are_distinct_and_sized() -> None:
    normal = Image.open(asset(ICON).open("rb"))
    error = Image.open(asset(ERROR_ICON).open("rb"))
    assert normal.size == error.size == (128, 128)
    diff = sum(
        1
        for a, b in zip(
            normal.convert("RGB").get_flattened_data(),
            error.convert("RGB").get_flattened_data(),
            strict=True,
        )
        if a != b
    )
    assert diff > 128 * 128 // 4  # visibly different, not a recolored pixel
    for name in ("trayproxy.ico", "trayproxy.icns"):
        assert asset(name).is_file()


def test_icons_are_regenerated_by_the_committed_script(tmp_path: Path) -> None:
    script = ROOT / "assets" / "make_icons.py"
    copy = tmp_path / "make_icons.py"
    copy.write_text(script.read_text())
    subprocess.run([sys.executable, str(copy)], check=True, capture_output=True, timeout=120)
    fresh = Image.open(tmp_path / "trayproxy.png").convert("RGBA")
    shipped = Image.open(asset(ICON).open("rb")).convert("RGBA")
    assert list(fresh.get_flattened_data()) == list(shipped.get_flattened_data())


def test_assets_ship_in_the_wheel_and_are_found_when_installed(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("trayproxy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("trayproxy.png", "trayproxy-error.png", "trayproxy.ico", "trayproxy.icns"):
        assert f"trayproxy/assets/{name}" in names
    assert "trayproxy/config/template.toml" in names and "trayproxy/page/web/app.js" in names
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import trayproxy, trayproxy.desktop.icons as a, trayproxy.config.files as c;"
        "print(trayproxy.__file__);"
        "print(a.asset('trayproxy.png').is_file(), a.asset('trayproxy-error.png').is_file());"
        "print('[providers.nvidia]' in c.template_text())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split("\n")
    assert out[0].startswith(str(site))  # the installed copy, not the checkout
    assert out[1] == "True True" and out[2] == "True"
