"""The config file on disk: reading it (a missing or unreadable file is a ConfigError too),
the first-run template (created with mode 0600), and the warning for a file others can read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from trayproxy.config.model import Config, ConfigError
from trayproxy.config.parse import parse


def load_file(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and parse ``path``. A missing or unreadable file is a ConfigError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found (run `trayproxy serve` once to create a template)", file=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from None
    return parse(text, file=str(path), environ=environ)


def permission_warning(path: Path) -> str | None:
    """A warning when a config file that may hold keys is readable by other users."""
    if os.name != "posix":
        return None
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        return (
            f"{path} is readable by other users (mode {mode:o}); if it holds keys, run "
            f"chmod 600 {path}"
        )
    return None


def template_text() -> str:
    """The commented first-run config."""
    return resources.files("trayproxy.config").joinpath("template.toml").read_text(encoding="utf-8")


def ensure_config_file(path: Path) -> bool:
    """Write the template to ``path`` (mode 0600) unless it exists. True if it was created."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(template_text())
    return True
