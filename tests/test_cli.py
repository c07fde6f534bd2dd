"""The ``trayproxy`` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from tests.conftest import UPSTREAM_KEY, config_text, free_port, http
from trayproxy import __version__


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trayproxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or os.environ.copy(),
    )


def wait_until_serving(url: str, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"trayproxy exited early: {proc.communicate()}")
        try:
            if http("GET", url + "/models")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("trayproxy did not start serving")


@pytest.fixture
def config_file(tmp_path: Path, upstream) -> Path:
    path = tmp_path / "my-config.toml"
    path.write_text(config_text(upstream.url))
    return path


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"trayproxy {__version__}"


def test_config_path_follows_trayproxy_home(tmp_path: Path) -> None:
    result = run("config-path")
    assert result.stdout.strip() == str(Path(os.environ["TRAYPROXY_HOME"]) / "config.toml")
    assert run("config-path", "--config", str(tmp_path / "x.toml")).stdout.strip() == str(
        tmp_path / "x.toml"
    )


def test_check_prints_the_routing_table(config_file: Path) -> None:
    result = run("check", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{config_file}: valid" in out
    row = next(line for line in out.splitlines() if line.startswith("nvidia/kimi-k2-thinking"))
    assert row.split() == [
        "nvidia/kimi-k2-thinking",
        "fake",
        "moonshotai/kimi-k2-thinking",
        "262144",
    ]
    assert "1 provider needs a key (requests to them fail): nokey" in out
    assert "$TRAYPROXY_TEST_UNSET_KEY (not set)" in out
    assert UPSTREAM_KEY not in out


def test_options_may_come_before_the_command(config_file: Path) -> None:
    result = run("--config", str(config_file), "check")
    assert result.returncode == 0, result.stderr
    assert f"{config_file}: valid" in result.stdout


def test_port_out_of_range_is_refused() -> None:
    result = run("serve", "--port", "70000")
    assert result.returncode == 2
    assert "must be between 0 and 65535, not 70000" in result.stderr


def test_check_refuses_what_serve_would_refuse(tmp_path: Path, upstream) -> None:
    """Listening beyond this machine without a client token: `serve` refuses to start, so
    `check` does not call the config valid."""
    exposed = tmp_path / "exposed.toml"
    exposed.write_text(config_text(upstream.url).replace('host = "127.0.0.1"', 'host = "0.0.0.0"'))
    result = run("check", "--config", str(exposed))
    assert result.returncode == 1
    assert "valid" not in result.stdout
    assert "Listening on 0.0.0.0 would let other machines use your provider keys" in result.stderr


def test_a_closed_pipe_ends_quietly(config_file: Path) -> None:
    """`trayproxy check | head -1`: the first line, then nothing, and no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trayproxy", "check", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=0,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    err = proc.stderr.read()
    assert proc.wait(30) == 0
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("halt",), "unknown command 'halt'; the commands are: serve, check,"),
        (("logs", "-n", "0"), "argument -n/--lines: must be between 1 and 100000, not 0"),
        (("logs", "-n", "-3"), "argument -n/--lines: must be between 1 and 100000, not -3"),
        (("usage", "--days", "0"), "argument --days: must be between 1 and 3650, not 0"),
        (("usage", "--days", "x"), "argument --days: not a whole number: 'x'"),
        (("doctor", "--timeout", "0"), "argument --timeout: must be more than 0"),
    ],
)
def test_careless_arguments_get_a_clear_word(args: tuple[str, ...], said: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_real_defaults() -> None:
    result = run("check", "--help")
    text = "".join(result.stdout.split())  # argparse wraps a long path over lines
    assert "(default:None)" not in text
    assert f"(default:{Path(os.environ['TRAYPROXY_HOME']) / 'config.toml'})" in text


def test_check_rejects_an_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.x]\nbase_url = "file:///etc/passwd"\n')
    result = run("check", "--config", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: providers.x.base_url: must be an http:// or https:// URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_answers_then_stops_cleanly_on_sigterm(config_file: Path, upstream) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trayproxy",
            "serve",
            "--config",
            str(config_file),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        wait_until_serving(base, proc)
        client = openai.OpenAI(base_url=base, api_key="client", max_retries=0)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="nvidia/kimi-k2-thinking",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
            if c.choices
        )
        assert text == "Hello from the fake upstream."
        assert upstream.last.body["model"] == "moonshotai/kimi-k2-thinking"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert f"serving {base}" in err
    assert "nvidia/kimi-k2-thinking -> fake:moonshotai/kimi-k2-thinking stream 200" in err
    assert "stopping" in err
    assert UPSTREAM_KEY not in err + out
    assert "Traceback" not in err


def test_first_run_writes_the_template_then_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TRAYPROXY_HOME": str(tmp_path / "fresh")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trayproxy", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1", proc)
        _, _, body = http("GET", f"http://127.0.0.1:{port}/v1/models")
        ids = [m["id"] for m in json.loads(body)["data"]]
        assert "nvidia/kimi-k2-thinking" in ids
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    created = tmp_path / "fresh" / "config.toml"
    assert f"Config created: A commented template is at {created}" in err
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    assert proc.returncode == 0


def test_a_second_launch_says_already_running(config_file: Path) -> None:
    port = free_port()
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trayproxy",
            "serve",
            "--config",
            str(config_file),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1", first)
        opened = config_file.parent / "opened.txt"
        env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        env["BROWSER"] = f"sh -c 'echo %s >> {opened}'"
        for args in (("serve", "--port", str(free_port())), ()):
            second = run(*args, env=env)
            assert second.returncode == 0
            assert second.stdout.strip() == (
                f"trayproxy is already running at http://127.0.0.1:{port}/v1."
            )
        # only the double-clicked app (no terminal) shows the running one's page
        assert opened.read_text().split() == [f"http://127.0.0.1:{port}/_trayproxy/"]
        assert first.poll() is None  # the first one is untouched
    finally:
        first.terminate()
        first.communicate(timeout=15)


def test_status_and_stop_find_the_running_trayproxy(config_file: Path) -> None:
    """`status` says where it runs and which providers it has no key for; `stop` makes it
    quit the way its Quit does, and waits; then `status` says it is not running."""
    assert run("stop").stdout.strip() == "trayproxy is not running."
    before = run("status")
    assert (before.returncode, before.stdout.strip()) == (3, "trayproxy is not running.")
    port = free_port()
    command = [sys.executable, "-m", "trayproxy", "serve", "--config", str(config_file)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1", proc)
        status = run("status", "--config", str(config_file))
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(
            f"trayproxy is running at http://127.0.0.1:{port}/v1 (pid {proc.pid}): 5 models"
        ), status.stdout
        assert "1 provider needs a key (requests to them fail): nokey" in status.stdout
        stopped = run("stop", "--config", str(config_file))
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "trayproxy stopped.")
        assert proc.wait(15) == 0  # it quit cleanly, as from its menu
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=15)
    assert run("status").returncode == 3


def test_serve_with_invalid_config_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eight thousand"\n')
    result = run("serve", "--config", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: server.port: must be an integer" in result.stderr
    assert result.stderr.count("must be an integer") == 1  # said once, not three times
    assert "Traceback" not in result.stderr


def test_serve_on_a_used_port_says_so(config_file: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("serve", "--config", str(config_file), "--port", str(port))
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is used by another program" in result.stderr
    assert "Traceback" not in result.stderr


def test_sighup_reloads_and_a_bad_edit_keeps_the_old_config(config_file: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trayproxy",
            "serve",
            "--config",
            str(config_file),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"

    def ids() -> list[str]:
        return [m["id"] for m in json.loads(http("GET", base + "/models")[2])["data"]]

    def wait_for(predicate) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    try:
        wait_until_serving(base, proc)
        text = config_file.read_text()
        config_file.write_text(text + '\n[models."added/model"]\nprovider = "fake"\n')
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "added/model" in ids())
        config_file.write_text(text + "\n[models.broken]\nprovider = 3\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert "added/model" in ids()  # the old config keeps serving
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "The old mappings keep serving." in err
    assert f"{config_file}:" in err and "models.broken.provider" in err
