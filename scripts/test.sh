#!/usr/bin/env bash
# Install everything the tests need, then run them all:
#   - Debian/Ubuntu packages for the real-tray tests (Xvfb, a tray host, xdotool, xclip,
#     DBus, a notification daemon, GTK), the browser tests (chromium, chromedriver) and
#     the desktop entry checks (desktop-file-utils) when apt-get is available;
#   - ./.venv with trayproxy, its test extra and PyGObject;
#   - a wheelhouse (.cache/wheelhouse) of trayproxy's dependencies, from which the test of
#     scripts/install.sh installs offline;
#   - Continue's transport and Anthropic's SDK (npm, pinned in tests/js) and the Claude Code
#     and Codex CLIs (npm, pinned in tests/claude and tests/codex);
#   - the Linux double-click bundle (packaging/build.sh), which a test starts and drives.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k tray -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
    xvfb xauth trayer xdotool x11-utils xclip imagemagick dbus-daemon notification-daemon
    gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1 libgirepository1.0-dev libcairo2-dev
    pkg-config python3-venv python3-gi chromium chromium-driver desktop-file-utils
)
command -v node >/dev/null 2>&1 || DEB_PACKAGES+=(nodejs npm)

if command -v apt-get >/dev/null 2>&1; then
    missing=()
    for pkg in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "Installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
else
    echo "apt-get not found: install the equivalents of ${DEB_PACKAGES[*]} yourself," >&2
    echo "or set TRAYPROXY_SKIP_DESKTOP_TESTS=1 to skip the real-tray tests." >&2
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# PyGObject gives pystray its GTK backend (the real menu). 3.51+ needs girepository-2.0,
# which Debian 12 does not have.
if pkg-config --exists girepository-2.0 2>/dev/null; then
    .venv/bin/python -m pip install --quiet PyGObject
elif pkg-config --exists gobject-introspection-1.0 2>/dev/null; then
    .venv/bin/python -m pip install --quiet 'PyGObject<3.51'
fi

# The install script's test installs into a fresh home from these wheels, offline: for this
# Python, and for the system's python3 (which the script prefers when it has PyGObject).
.venv/bin/python -m pip wheel --quiet --disable-pip-version-check -w .cache/wheelhouse \
    . 'setuptools>=77'
if [ -x /usr/bin/python3 ]; then
    version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
    system_version="$(version /usr/bin/python3)"
    if [ "$system_version" != "$(version .venv/bin/python)" ]; then
        .venv/bin/python -c 'from importlib.metadata import requires
print("\n".join(r for r in requires("trayproxy") if "extra ==" not in r))' > .cache/requirements.txt
        .venv/bin/python -m pip download --quiet --disable-pip-version-check \
            --only-binary=:all: --python-version "$system_version" \
            -d .cache/wheelhouse -r .cache/requirements.txt 'setuptools>=77'
    fi
fi

if ! command -v node >/dev/null 2>&1; then
    echo "Node.js is needed for the Continue client test: install nodejs and npm" >&2
    exit 1
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# The real Claude Code CLI (a native binary of about 235 MB), driven headless by a test.
npm ci --prefix tests/claude --no-audit --no-fund --loglevel=error
# The real Codex CLI (a native binary of about 420 MB), driven headless by a test.
npm ci --prefix tests/codex --no-audit --no-fund --loglevel=error

.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The house's layers (contracts in pyproject.toml): arrows point down only.
.venv/bin/lint-imports
# The Linux double-click bundle, for tests/test_bundle.py (about 1.5 min; skip it with
# TRAYPROXY_SKIP_BUNDLE_TESTS=1).
if [ "${TRAYPROXY_SKIP_BUNDLE_TESTS:-0}" != "1" ] && [ "$(uname -s)" = "Linux" ]; then
    bash packaging/build.sh dist
fi
# Load and soak (first, so that pytest's summary stays the last line): 10,000 requests,
# half streamed, 64 at a time, through a real `trayproxy serve`.
# Then the side-by-side benchmark in its quick form: it checks every answer it gets, so this
# proves the harness works here (its figures on a shared CI machine are not the README's).
if [ "$#" -eq 0 ]; then
    .venv/bin/python -m bench.soak --requests 10000 --concurrency 64
    .venv/bin/python -m bench --quick --no-litellm
fi
.venv/bin/python -m pytest "$@"
