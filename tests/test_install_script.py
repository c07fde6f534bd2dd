"""``scripts/install.sh`` in a fresh home (a fake ``HOME``): it installs, puts trayproxy in
the applications menu and on a path (or says what to add), leaves it running detached from
the terminal, and prefers a Python that has PyGObject. Then the user's first hour: a key
stored as the README says, the app started as the desktop starts it (no shell environment),
and a chat call that reaches the provider with that key.

pip reads the packages from the wheelhouse ``scripts/test.sh`` fills (no test reaches the
internet); the keychain is a file-backed keyring backend."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = Path(os.environ.get("TRAYPROXY_WHEELHOUSE", ROOT / ".cache" / "wheelhouse"))
SYSTEM_PYTHON = "/usr/bin/python3"
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(sys.platform == "win32", reason="install.sh is for Linux and macOS"),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    if not any(WHEELHOUSE.glob("aiohttp-*.whl")):
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run `bash scripts/test.sh`, which fills it")
    home = tmp_path / "home"
    home.mkdir()
    return home


def _env(home: Path, tmp_path: Path, path_first: Path | None = None) -> dict[str, str]:
    """What a user's terminal has, in a fresh home: no XDG variables, no display, a PATH
    without ~/.local/bin; pip offline; the test keychain."""
    keyring_dir = tmp_path / "keyring-backend"
    keyring_dir.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "file_keyring.py", keyring_dir / "file_keyring.py")
    path = "/usr/local/bin:/usr/bin:/bin"
    return {
        "HOME": str(home),
        "PATH": f"{path_first}:{path}" if path_first else path,
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # the OS keychain's stand-in, importable by the installed trayproxy
        "PYTHONPATH": str(keyring_dir),
        "PYTHON_KEYRING_BACKEND": "file_keyring.FileKeyring",
        "TRAYPROXY_TEST_KEYRING": str(tmp_path / "keychain.json"),
    }


def _python_without_gi(tmp_path: Path) -> Path:
    """A python3 like pyenv's: first on PATH, blind to the distro's PyGObject."""
    venv = tmp_path / "pyenv-like"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    check = subprocess.run([str(venv / "bin" / "python3"), "-c", "import gi"], check=False)
    assert check.returncode != 0, "the stand-in for pyenv's Python can import gi"
    return venv / "bin"


def _install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "install.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd="/",
    )


def _trayproxy(home: Path, env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run(
        [str(home / ".local" / "bin" / "trayproxy"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _wait_running(home: Path, env: dict[str, str], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = _trayproxy(home, env, "status").stdout
        if "running at" in out:
            return out
        time.sleep(0.1)
    raise AssertionError("trayproxy did not start")


def test_install_stays_running_in_the_menu_and_a_desktop_start_uses_the_stored_key(
    home: Path, tmp_path: Path, upstream
) -> None:
    if subprocess.run([SYSTEM_PYTHON, "-c", "import gi"], check=False).returncode != 0:
        pytest.fail(f"{SYSTEM_PYTHON} has no PyGObject: install python3-gi (scripts/test.sh does)")
    port = free_port()
    config = home / ".config" / "trayproxy" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f"[server]\nport = {port}\n"
        f'[providers.fake]\nbase_url = "{upstream.url}/v1"\n'  # no api_key line
        '[models."fake/kimi"]\nprovider = "fake"\nmodel = "moonshotai/kimi-k2-thinking"\n'
    )
    env = _env(home, tmp_path, path_first=_python_without_gi(tmp_path))
    try:
        done = _install(env)
        assert done.returncode == 0, done.stderr + done.stdout
        said = done.stdout
        # what it did, in a few lines
        assert len(said.splitlines()) <= 12, said
        assert f"from {SYSTEM_PYTHON}" in said  # not the gi-less python3 first on PATH
        assert "warning" not in said
        venv = home / ".local" / "share" / "trayproxy" / "venv"
        link = home / ".local" / "bin" / "trayproxy"
        assert link.resolve() == (venv / "bin" / "trayproxy").resolve()
        assert subprocess.run([str(venv / "bin" / "python"), "-c", "import gi"]).returncode == 0
        # on PATH, or exactly what to add
        assert "is not on your PATH" in said
        assert """echo 'export PATH="$HOME/.local/bin:$PATH"' >> ~/.bashrc""" in said
        # in the applications menu
        entry = home / ".local" / "share" / "applications" / "trayproxy.desktop"
        assert f"menu:     {entry}" in said
        exec_line = next(
            line for line in entry.read_text().splitlines() if line.startswith("Exec=")
        )
        assert shlex.split(exec_line[5:]) == [str(venv / "bin" / "trayproxy")]
        # running, detached from the terminal that ran the script
        assert f"running:  http://127.0.0.1:{port}/v1" in said
        status = _trayproxy(home, env, "status").stdout
        pid = int(status.split("(pid ")[1].split(")")[0])
        assert os.getsid(pid) == pid != os.getsid(0)  # its own session: no terminal's hangup
        assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[4] == "0"  # no tty

        # the first hour: a key stored the way the README says...
        stored = _trayproxy(home, env, "key", "set", "fake", stdin="sk-from-the-keychain\n")
        assert stored.returncode == 0, stored.stderr
        assert _trayproxy(home, env, "stop").returncode == 0
        assert "not running" in _trayproxy(home, env, "status").stdout

        # ...and the app started as the desktop starts it: no shell environment at all
        desktop_env = {
            k: env[k]
            for k in ("HOME", "PYTHONPATH", "PYTHON_KEYRING_BACKEND", "TRAYPROXY_TEST_KEYRING")
        }
        desktop_env["PATH"] = "/usr/bin:/bin"
        subprocess.Popen(
            shlex.split(exec_line[5:]),
            env=desktop_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_running(home, env)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="editor-key", max_retries=0
        )
        answer = client.chat.completions.create(
            model="fake/kimi", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
        assert upstream.last.headers["Authorization"] == "Bearer sk-from-the-keychain"
        listed = _trayproxy(home, env, "key", "list").stdout
        assert "keychain entry fake (found)" in listed and "sk-from" not in listed
    finally:
        _trayproxy(home, env, "stop")


def test_without_pygobject_it_says_how_to_get_the_menu_and_finds_its_path(
    home: Path, tmp_path: Path
) -> None:
    no_gi = _python_without_gi(tmp_path)
    env = _env(home, tmp_path)
    env["PYTHON"] = str(no_gi / "python3")
    env["PATH"] = f"{home}/.local/bin:{env['PATH']}"
    env["SHELL"] = "/usr/bin/zsh"
    done = _install(env, "--no-start")
    assert done.returncode == 0, done.stderr + done.stdout
    said = done.stdout
    assert "warning:  no PyGObject" in said and "sudo apt install python3-gi" in said
    assert "PATH" not in said  # ~/.local/bin is on this PATH already
    assert "running" not in said and "start it: trayproxy" in said
    version = subprocess.run(
        ["trayproxy", "--version"], env=env, capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("trayproxy ")
    again = _install(env, "--bogus")
    assert again.returncode == 2 and "usage: bash scripts/install.sh" in again.stderr
