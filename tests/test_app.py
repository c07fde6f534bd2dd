"""The desktop app's core without a display: every menu command, reloads, rebinding."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from ruamel.yaml import YAML

from tests.conftest import config_text, free_port, http
from trayproxy.config.parse import parse
from trayproxy.config.paths import app_paths
from trayproxy.desktop import menu
from trayproxy.desktop.app import App, Notice, describe_change
from trayproxy.desktop.instance import InstanceLock


class Desktop:
    """Records what the app asked the desktop to do."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.calls: list[tuple[str, object]] = []

    def copy_text(self, text: str) -> tuple[bool, str]:
        self.calls.append(("copy", text))
        return self.ok, "copied" if self.ok else "no clipboard tool found"

    def open_url(self, url: str) -> tuple[bool, str]:
        self.calls.append(("url", url))
        return self.ok, "opened"

    def open_path(self, path: Path, *, edit: bool = False) -> tuple[bool, str]:
        self.calls.append(("edit" if edit else "open", path))
        return self.ok, "opened" if self.ok else "xdg-open is not installed"


class Exploding(Desktop):
    def copy_text(self, text: str) -> tuple[bool, str]:
        raise RuntimeError("boom")


def wait_for(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def make_app(tmp_path: Path, upstream) -> Iterator:
    apps: list[App] = []

    def make(text: str | None = None, desktop: Desktop | None = None) -> App:
        path = tmp_path / "config.toml"
        if text is not None or not path.exists():
            path.write_text(text if text is not None else config_text(upstream.url))
        app = App(path, app_paths(), desktop=desktop or Desktop())
        notices: list[Notice] = []
        app.set_notifier(notices.append)
        app.notices = notices  # type: ignore[attr-defined]
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown(grace=1)


def test_status_line_and_menu(make_app) -> None:
    app = make_app()
    app.start()
    assert app.serving
    # the test config's provider "nokey" reads an unset variable
    assert app.status == f"Serving {app.server.base_url} · 5 models · 1 provider needs a key"
    entries = app.menu()
    assert [e.label for e in entries] == [
        app.status,
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
    assert not entries[0].clickable
    assert [e.label for e in entries if e.default] == ["Recent routing log"]
    assert {e.command for e in entries if e.clickable} == set(menu.COMMANDS)
    assert [e.checked for e in entries if e.checked is not None] == [False]


def test_copy_base_url(make_app) -> None:
    desktop = Desktop()
    app = make_app(desktop=desktop)
    app.start()
    notice = app.dispatch(menu.COPY_BASE_URL)
    assert desktop.calls == [("copy", app.server.base_url)]
    assert notice == Notice("Copied", f"{app.server.base_url} is on the clipboard")
    assert app.notices[-1] == notice


def test_copy_continue_config(make_app) -> None:
    desktop = Desktop()
    app = make_app(desktop=desktop)
    app.start()
    notice = app.dispatch(menu.COPY_CONTINUE)
    assert notice is not None and notice.ok and "5 models" in notice.message
    [(kind, text)] = desktop.calls
    assert kind == "copy" and text.count("provider: openai") == 5
    models = YAML(typ="safe").load(text)["models"]
    assert {m["apiBase"] for m in models} == {app.server.base_url}
    status, _, body = http("GET", app.server.root_url + "/_trayproxy/api/continue-config")
    assert status == 200 and body.decode() == text


def test_copy_failure_says_why(make_app) -> None:
    app = make_app(desktop=Desktop(ok=False))
    app.start()
    notice = app.dispatch(menu.COPY_BASE_URL)
    assert notice is not None and not notice.ok
    assert "no clipboard tool found" in notice.message
    assert app.server.base_url in notice.message  # the user can still read it


def test_dispatch_never_raises(make_app) -> None:
    app = make_app(desktop=Exploding())
    app.start()
    notice = app.dispatch(menu.COPY_BASE_URL)
    assert notice is not None and not notice.ok and "boom" in notice.message
    assert app.dispatch("no-such-command") is not None


def test_open_routing_log_config_and_log_folder(make_app, tmp_path: Path) -> None:
    desktop = Desktop()
    app = make_app(desktop=desktop)
    app.start()
    app.dispatch(menu.OPEN_LOG)
    app.dispatch(menu.OPEN_CONFIG)
    app.dispatch(menu.OPEN_LOG_FOLDER)
    assert desktop.calls == [
        ("url", app.server.root_url + "/_trayproxy/"),
        ("edit", tmp_path / "config.toml"),
        ("open", app.paths.log_dir),
    ]
    assert app.paths.log_dir.is_dir()


def test_open_config_creates_the_template_first(make_app, tmp_path: Path) -> None:
    desktop = Desktop()
    app = make_app(desktop=desktop)
    app.start()
    app.config_path.unlink()
    app.dispatch(menu.OPEN_CONFIG)
    assert app.config_path.is_file()
    assert "[providers.nvidia]" in app.config_path.read_text()
    assert desktop.calls == [("edit", app.config_path)]


def test_open_failure_is_reported(make_app) -> None:
    app = make_app(desktop=Desktop(ok=False))
    app.start()
    notice = app.dispatch(menu.OPEN_CONFIG)
    assert notice is not None and not notice.ok and "xdg-open" in notice.message


def test_quit_is_requested(make_app) -> None:
    app = make_app()
    app.start()
    assert app.dispatch(menu.QUIT) is None
    assert app.quit_requested.is_set()


def test_reload_reports_the_change_and_bad_edits_keep_the_old_mappings(make_app) -> None:
    app = make_app()
    app.start()
    path = app.config_path
    good = path.read_text()
    path.write_text(
        good.replace('[models."down/model"]', '[models."unused/x"]')
        + '\n[models."new/a"]\nprovider = "fake"\n[models."new/b"]\nprovider = "fake"\n'
    )
    notice = app.dispatch(menu.RELOAD)
    assert notice == Notice("Mappings reloaded", "7 models (+3, −1)")
    assert "new/a" in app.server.config.models
    path.write_text(good + "\n[models.broken]\nprovider = 7\n")
    notice = app.dispatch(menu.RELOAD)
    assert notice is not None and not notice.ok
    assert f"{path}:" in notice.message and "models.broken.provider" in notice.message
    assert "The old mappings keep serving." in notice.message
    assert "new/a" in app.server.config.models
    ids = [m["id"] for m in json.loads(http("GET", app.server.base_url + "/models")[2])["data"]]
    assert "new/a" in ids


def test_describe_change_counts_edits() -> None:
    base = '[providers.p]\nbase_url = "http://x"\n[models.a]\nprovider = "p"\n'
    old = parse(base)
    assert describe_change(old, old) == "1 model (no changes)"
    new = parse(base.replace('provider = "p"', 'provider = "p"\nmodel = "z"'))
    assert describe_change(old, new) == "1 model (1 changed)"


def test_saving_the_file_reloads_it(make_app) -> None:
    app = make_app()
    app.start()
    path = app.config_path
    good = path.read_text()
    tmp = path.with_suffix(".swp")
    tmp.write_text(good + '\n[models."saved/model"]\nprovider = "fake"\n')
    tmp.replace(path)  # how many editors save
    assert wait_for(lambda: "saved/model" in app.server.config.models)
    assert wait_for(lambda: any(n.title == "Mappings reloaded" for n in app.notices))
    before = len(app.notices)
    path.write_text(good + "\n[models.bad]\nprovider = 1\n")
    assert wait_for(lambda: len(app.notices) > before)
    time.sleep(1.5)  # the watcher keeps polling: the same error is not announced again
    bad = [n for n in app.notices[before:] if not n.ok]
    assert len(bad) == 1 and "models.bad.provider" in bad[0].message
    assert "saved/model" in app.server.config.models


def test_watch_config_false_ignores_saves(make_app, upstream) -> None:
    text = config_text(upstream.url).replace("port = 0", "port = 0\nwatch_config = false")
    app = make_app(text)
    app.start()
    app.config_path.write_text(text + '\n[models."saved/model"]\nprovider = "fake"\n')
    time.sleep(1.5)
    assert "saved/model" not in app.server.config.models


def test_port_change_rebinds_and_in_use_port_keeps_the_old_one(make_app, upstream) -> None:
    app = make_app()
    app.start()
    old_url = app.server.base_url
    new_port = free_port()
    app.config_path.write_text(config_text(upstream.url, port=new_port))
    notice = app.dispatch(menu.RELOAD)
    assert notice is not None and f"Now serving http://127.0.0.1:{new_port}/v1" in notice.message
    assert http("GET", f"http://127.0.0.1:{new_port}/v1/models")[0] == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(old_url + "/models", timeout=2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        app.config_path.write_text(config_text(upstream.url, port=taken))
        notice = app.dispatch(menu.RELOAD)
    assert notice is not None and f"Still serving http://127.0.0.1:{new_port}/v1" in notice.message
    assert app.server.port == new_port


def test_port_in_use_is_the_error_state_then_reload_recovers(make_app, upstream) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        app = make_app(config_text(upstream.url, port=port))
        app.start()  # no exception
        assert not app.serving
        assert app.status == f"Port {port} is used by another program"
        assert app.notices[-1].title == "trayproxy is not serving"
        assert [e.label for e in app.menu() if e.default] == ["Open config file"]
        notice = app.dispatch(menu.COPY_BASE_URL)
        assert notice is not None and not notice.ok  # nothing wrong is put on the clipboard
        assert f"http://127.0.0.1:{port}/v1" in notice.message
        assert app.desktop.calls == []
        # the address comes from the config as last read, not from reading it again (which
        # would ask the keychain for every key each time the menu shows the status)
        app.config_path.write_text("[server\n")
        assert app.intended_url == f"http://127.0.0.1:{port}/v1"
    app.config_path.write_text(config_text(upstream.url, port=free_port()))
    notice = app.dispatch(menu.RELOAD)
    assert app.serving and notice is not None and notice.title == "Started"
    assert notice.message == app.status  # "Serving http://... · 5 models", said once


def test_invalid_config_at_start_is_the_error_state(make_app) -> None:
    app = make_app('[server]\nport = "x"\n')
    app.start()
    assert not app.serving
    assert app.status == "Config error: config.toml:2 server.port"
    assert "must be an integer" in (app.error_detail or "")


def test_reload_during_a_stream(make_app, upstream) -> None:
    """The stream in flight finishes on the old mapping; the next request uses the new one."""
    extra = '\n[models."edit/me"]\nprovider = "fake"\nmodel = "gated-old"\n'
    app = make_app(config_text(upstream.url) + extra)
    app.start()
    client = openai.OpenAI(base_url=app.server.base_url, api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="edit/me", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = iter(stream)
    assert next(chunks).choices[0].delta.content == "Hello"
    app.config_path.write_text(config_text(upstream.url) + extra.replace("gated-old", "gated-new"))
    assert app.dispatch(menu.RELOAD) == Notice("Mappings reloaded", "6 models (1 changed)")
    upstream.gate.set()
    rest = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Hello" + rest == "Hello from the fake upstream."
    assert upstream.requests[-1].body["model"] == "gated-old"
    client.chat.completions.create(model="edit/me", messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests[-1].body["model"] == "gated-new"
    records = app.server.logbook.recent()
    assert [r.upstream_model for r in records] == ["gated-new", "gated-old"]


def test_page_actions_run_app_commands(make_app) -> None:
    desktop = Desktop()
    app = make_app(desktop=desktop)
    app.start()
    url = app.server.root_url + "/_trayproxy/api/actions/"
    status, _, body = http("POST", url + "reload", b"{}", {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"ok": True, "message": "5 models (no changes)"}
    status, _, body = http("POST", url + "open_config", b"{}", {"Content-Type": "application/json"})
    assert json.loads(body)["ok"] and desktop.calls == [("edit", app.config_path)]
    # a web page elsewhere cannot trigger actions
    status, _, _ = http(
        "POST",
        url + "reload",
        b"{}",
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
    )
    assert status == 403
    status, _, _ = http("POST", url + "reload", b"{}", {"Content-Type": "text/plain"})
    assert status == 415


def test_start_at_login_toggles_a_real_autostart_entry(make_app, tmp_path: Path) -> None:
    import os

    app = make_app()
    app.start()
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "trayproxy.desktop"
    notice = app.dispatch(menu.AUTOSTART)
    assert notice is not None and notice.ok and str(entry) in notice.message
    assert entry.is_file() and "Exec=" in entry.read_text()
    assert [e.checked for e in app.menu() if e.checked is not None] == [True]
    app.dispatch(menu.AUTOSTART)
    assert not entry.exists()
    assert [e.checked for e in app.menu() if e.checked is not None] == [False]


def test_page_can_quit(make_app) -> None:
    app = make_app()
    app.start()
    quits: list[bool] = []
    app.add_quit_listener(lambda: quits.append(True))
    status, _, body = http(
        "POST",
        app.server.root_url + "/_trayproxy/api/actions/quit",
        b"{}",
        {"Content-Type": "application/json"},
    )
    assert status == 200 and json.loads(body)["ok"]
    assert app.quit_requested.is_set() and quits == [True]


def test_start_up_notices_reach_the_tray_once_it_exists(tmp_path: Path) -> None:
    app = App(tmp_path / "new" / "config.toml", app_paths(), desktop=Desktop())
    app.start()  # writes the template: a notice before any tray exists
    try:
        shown: list[Notice] = []
        app.set_notifier(shown.append)
        assert [n.title for n in shown] == ["Config created"]
        assert "A commented template is at" in shown[0].message
    finally:
        app.shutdown(grace=1)


def test_second_instance_sees_the_first(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path)
    assert first.acquire()
    first.publish("http://127.0.0.1:8000/v1")
    second = InstanceLock(tmp_path)
    assert not second.acquire()
    assert second.running_info()["url"] == "http://127.0.0.1:8000/v1"
    first.release()
    assert second.acquire()
    second.release()


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, time; from pathlib import Path;"
        "from trayproxy.desktop.instance import InstanceLock;"
        f"lock = InstanceLock(Path({str(tmp_path)!r})); assert lock.acquire(); print('held');"
        "sys.stdout.flush(); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not InstanceLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    lock = InstanceLock(tmp_path)
    assert lock.acquire()  # a crashed instance never blocks the next launch
    lock.release()


def test_threads_left_behind(make_app) -> None:
    before = {t.name for t in threading.enumerate()}
    app = make_app()
    app.start()
    app.shutdown(grace=1)
    leftover = {t.name for t in threading.enumerate()} - before
    assert not {n for n in leftover if n.startswith("trayproxy")}
