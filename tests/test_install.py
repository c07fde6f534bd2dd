"""The README's install command works from a checkout, into a fresh virtual environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_install_script(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "TRAYPROXY_VENV": str(tmp_path / "venv")}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install.sh"), "--no-start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    link = home / ".local" / "bin" / "trayproxy"
    assert "Installed trayproxy " in result.stdout and str(link) in result.stdout
    out = subprocess.run(
        [str(link), "check", "--config", str(ROOT / "trayproxy" / "config" / "template.toml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "nvidia/kimi-k2-thinking" in out.stdout
