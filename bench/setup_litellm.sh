#!/usr/bin/env bash
# LiteLLM's proxy in its own virtualenv (bench/.venv-litellm), so that `python -m bench` can
# run it side by side with trayproxy. It is not a trayproxy dependency; this needs PyPI.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv-litellm
.venv-litellm/bin/pip install --quiet --upgrade pip
.venv-litellm/bin/pip install --quiet 'litellm[proxy]'
.venv-litellm/bin/litellm --version
