"""Build trayproxy's double-click app with PyInstaller: ``python packaging/build.py``.

Needs ``pip install pyinstaller`` (and, on Linux, PyGObject so the bundle has the GTK tray
menu). Prints the build time and the size of what it made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> int:
    dist = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"
    work = dist.parent / "build-pyinstaller"
    # pystray's PyInstaller hook imports pystray: the dummy backend needs no display
    env = {**os.environ, "PYSTRAY_BACKEND": "dummy"}
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
            str(ROOT / "packaging" / "trayproxy.spec"),
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )
    seconds = time.monotonic() - started
    shutil.rmtree(work, ignore_errors=True)
    product = dist / ("trayproxy.app" if sys.platform == "darwin" else "trayproxy")
    print(f"built {product} in {seconds:.0f} s, {size_mb(product):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
