#!/usr/bin/env bash
# Build the double-click app in its own virtual environment (.venv-build), so that only
# trayproxy's runtime dependencies end up in it: `bash packaging/build.sh [DIST_DIR]`.
# Linux: dist/trayproxy/trayproxy (one folder, GTK menu through PyGObject).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv-build/bin/python ] || "$PYTHON" -m venv .venv-build
.venv-build/bin/python -m pip install --quiet --upgrade pip
.venv-build/bin/python -m pip install --quiet . pyinstaller keyring
if [ "$(uname -s)" = "Linux" ]; then
    if pkg-config --exists girepository-2.0 2>/dev/null; then
        .venv-build/bin/python -m pip install --quiet PyGObject
    else
        .venv-build/bin/python -m pip install --quiet 'PyGObject<3.51'
    fi
fi
.venv-build/bin/python packaging/build.py "${1:-dist}"
