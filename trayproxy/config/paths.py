"""Where trayproxy keeps its config, logs and data.

``TRAYPROXY_HOME`` puts everything under one folder (tests and portable installs use it);
otherwise the platform's user directories for the app ``trayproxy`` are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "trayproxy"
HOME_ENV = "TRAYPROXY_HOME"
CONFIG_FILE_NAME = "config.toml"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    state_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / CONFIG_FILE_NAME


def app_paths(environ: dict[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    home = env.get(HOME_ENV)
    if home:
        root = Path(home).expanduser()
        return Paths(
            config_dir=root,
            data_dir=root / "data",
            log_dir=root / "logs",
            state_dir=root / "state",
        )
    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    return Paths(
        config_dir=Path(dirs.user_config_dir),
        data_dir=Path(dirs.user_data_dir),
        log_dir=Path(dirs.user_log_dir),
        state_dir=Path(dirs.user_state_dir),
    )


def config_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: ``--config`` if given, else the default location."""
    if override:
        return Path(override).expanduser()
    return app_paths().config_file
