#!/usr/bin/env bash
# Install trayproxy for the current user (Linux, macOS) into its own virtual environment,
# put `trayproxy` on ~/.local/bin, and start it. `--no-start` only installs.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${TRAYPROXY_VENV:-$HOME/.local/share/trayproxy/venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c "import sys; sys.exit(sys.version_info < (3, 10))" 2>/dev/null; then
    echo "trayproxy needs Python 3.10 or newer ($PYTHON is older or missing)." >&2
    exit 1
fi
# --system-site-packages lets the venv use the distro's PyGObject (python3-gi), which gives
# the tray its full menu on Linux.
if ! "$PYTHON" -m venv --system-site-packages "$VENV"; then
    echo "Could not create a virtual environment: install python3-venv (Debian/Ubuntu)." >&2
    exit 1
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet .
mkdir -p "$HOME/.local/bin"
ln -sf "$VENV/bin/trayproxy" "$HOME/.local/bin/trayproxy"
echo "Installed $("$VENV/bin/trayproxy" --version) as $HOME/.local/bin/trayproxy"
if [ "${1:-}" != "--no-start" ]; then
    exec "$VENV/bin/trayproxy"
fi
