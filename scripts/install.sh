#!/usr/bin/env bash
# Install trayproxy for the current user (Linux, macOS) and leave it running:
#   - its own virtual environment (~/.local/share/trayproxy/venv), made with a Python that
#     has PyGObject where there is one, so the Linux tray gets its menu;
#   - `trayproxy` linked into ~/.local/bin (and what to add to PATH when that is not on it);
#   - on Linux, an entry in the applications menu;
#   - trayproxy started detached from this terminal (closing the terminal does not stop it).
# Run it again to upgrade: the running trayproxy is stopped and started again.
#   --no-start   install only
# PYTHON=/path/to/python3 chooses the Python; TRAYPROXY_VENV and TRAYPROXY_BIN the places.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${TRAYPROXY_VENV:-$HOME/.local/share/trayproxy/venv}"
BIN="${TRAYPROXY_BIN:-$HOME/.local/bin}"
START=1
for arg in "$@"; do
    case "$arg" in
        --no-start) START=0 ;;
        *) echo "usage: bash scripts/install.sh [--no-start]" >&2; exit 2 ;;
    esac
done
LINUX=0
[ "$(uname -s)" = "Linux" ] && LINUX=1

usable() {  # Python >= 3.10 that can make a virtual environment
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}
has_gi() {
    "$1" -c 'import gi' 2>/dev/null
}

# The first usable Python on PATH, unless another one has PyGObject: pyenv's, conda's or
# Homebrew's python3 usually cannot see the distro's python3-gi, /usr/bin/python3 can.
choose_python() {
    if [ -n "${PYTHON:-}" ]; then
        echo "$PYTHON"
        return
    fi
    local first="" candidate path
    for candidate in python3 /usr/bin/python3 /usr/local/bin/python3 \
        python3.14 python3.13 python3.12 python3.11 python3.10; do
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        usable "$path" || continue
        [ -n "$first" ] || first="$path"
        if [ "$LINUX" = 0 ] || has_gi "$path"; then
            echo "$path"
            return
        fi
    done
    echo "$first"
}

PY="$(choose_python)"
if [ -z "$PY" ] || ! usable "$PY"; then
    echo "trayproxy needs Python 3.10 or newer with venv (Debian/Ubuntu: sudo apt install" >&2
    echo "python3 python3-venv; macOS: brew install python). Or set PYTHON=/path/to/python3." >&2
    exit 1
fi

# An earlier install may be running (even one that does not answer): stop it before its
# files are replaced. `stop` is quiet and succeeds when nothing runs.
RESTART=0
if [ -x "$VENV/bin/trayproxy" ]; then
    case "$("$VENV/bin/trayproxy" status 2>/dev/null || true)" in
        *"is not running"*) ;;
        *) RESTART=1 ;;
    esac
    "$VENV/bin/trayproxy" stop >/dev/null 2>&1 || true
fi

# The environment is made anew only for another Python; else upgraded in place, so that a
# failed download leaves the earlier install working. --system-site-packages lets it use the
# distro's PyGObject (python3-gi).
base_of() { "$1" -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null; }
CLEAR=--clear
if [ -x "$VENV/bin/python" ] && [ "$(base_of "$VENV/bin/python")" = "$(base_of "$PY")" ]; then
    CLEAR=""
fi
if ! "$PY" -m venv $CLEAR --system-site-packages "$VENV"; then
    echo "Could not create a virtual environment with $PY (Debian/Ubuntu: install python3-venv)." >&2
    exit 1
fi
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade .; then
    echo "The install failed (see pip's message above); nothing else was changed." >&2
    if [ "$RESTART" = 1 ] && [ -x "$VENV/bin/trayproxy" ]; then
        echo "Starting the trayproxy that was running again." >&2
        (setsid "$VENV/bin/trayproxy" </dev/null >/dev/null 2>&1 &) 2>/dev/null || true
    fi
    exit 1
fi

MENU_NOTE=""
if [ "$LINUX" = 1 ] && ! has_gi "$VENV/bin/python"; then
    # The distro's python3-gi is built for /usr/bin/python3 only. Build PyGObject here when
    # its build dependencies are installed; otherwise say what gives the tray its menu.
    if pkg-config --exists girepository-2.0 2>/dev/null \
        && "$VENV/bin/python" -m pip install --quiet PyGObject 2>/dev/null; then
        :
    elif pkg-config --exists gobject-introspection-1.0 2>/dev/null \
        && "$VENV/bin/python" -m pip install --quiet 'PyGObject<3.51' 2>/dev/null; then
        :
    else
        MENU_NOTE="no PyGObject for $PY: the tray icon will have no menu. Install python3-gi
            (Debian/Ubuntu: sudo apt install python3-gi gir1.2-ayatanaappindicator3-0.1;
            Fedora: sudo dnf install python3-gobject libayatana-appindicator-gtk3), then
            run this script again"
    fi
fi

mkdir -p "$BIN"
ln -sf "$VENV/bin/trayproxy" "$BIN/trayproxy"
VERSION="$("$VENV/bin/trayproxy" --version)"
PYVERSION="$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"

echo "Installed $VERSION (Python $PYVERSION from $PY) in $VENV"
echo "  command:  $BIN/trayproxy"
if [ -n "$MENU_NOTE" ]; then
    echo "  warning:  $MENU_NOTE"
fi

if [ "$LINUX" = 1 ]; then
    entry="$("$VENV/bin/trayproxy" install-desktop)"
    echo "  menu:     ${entry#Added trayproxy to the applications menu: }"
fi

SHOWN_BIN="$BIN"
case "$BIN" in "$HOME"/*) SHOWN_BIN="\$HOME/${BIN#"$HOME"/}" ;; esac
case ":$PATH:" in
    *":$BIN:"*)
        found="$(command -v trayproxy || true)"
        if [ -n "$found" ] && [ "$found" != "$BIN/trayproxy" ]; then
            echo "  PATH:     $found comes first on your PATH and is another trayproxy"
        fi
        ;;
    *)
        case "$(basename "${SHELL:-sh}")" in
            zsh) add="echo 'export PATH=\"$SHOWN_BIN:\$PATH\"' >> ~/.zshrc" ;;
            bash) add="echo 'export PATH=\"$SHOWN_BIN:\$PATH\"' >> ~/.bashrc" ;;
            fish) add="fish_add_path $SHOWN_BIN" ;;
            *) add="echo 'export PATH=\"$SHOWN_BIN:\$PATH\"' >> ~/.profile" ;;
        esac
        echo "  PATH:     $BIN is not on your PATH, so a new shell will not find trayproxy."
        echo "            Add it with:  $add"
        echo "            then open a new terminal."
        ;;
esac

if [ "$START" = 0 ]; then
    echo "  start it: trayproxy (or from the applications menu)"
    exit 0
fi

# Detached: its own session, no terminal, output to its log file (the log folder).
if command -v setsid >/dev/null 2>&1; then
    setsid "$VENV/bin/trayproxy" </dev/null >/dev/null 2>&1 &
else  # macOS: nohup keeps it past the terminal
    nohup "$VENV/bin/trayproxy" </dev/null >/dev/null 2>&1 &
fi
disown 2>/dev/null || true
for _ in $(seq 1 100); do
    if said="$("$VENV/bin/trayproxy" status 2>/dev/null)" && [ "${said#*running at}" != "$said" ]; then
        break
    fi
    said=""
    sleep 0.1
done
if [ -z "$said" ]; then
    log="$("$VENV/bin/python" -c 'from trayproxy.config.paths import app_paths; print(app_paths().log_dir)')"
    echo "  running:  no: trayproxy did not start within 10 s; its log is in $log" >&2
    exit 1
fi
first="${said%%$'\n'*}"
echo "  running:  ${first#trayproxy is running at }"
echo "            $( [ "$RESTART" = 1 ] && echo "restarted; " )detached from this terminal; 'trayproxy stop' stops it"
rest="${said#*$'\n'}"
if [ "$rest" != "$said" ]; then
    echo "  keys:     $rest"
fi
echo "  next:     trayproxy key set PROVIDER, then point your editor at the URL above"
