#!/usr/bin/env bash
# Install everything the tests need into ./.venv and tests/js/node_modules, then run them.
# Works on a fresh Debian/Ubuntu machine (as root or with sudo) and on a developer laptop.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

if ! command -v node >/dev/null 2>&1; then
    echo "Node.js is needed for the Continue client test: install nodejs and npm" >&2
    exit 1
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
