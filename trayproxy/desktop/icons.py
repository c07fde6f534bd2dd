"""Find the icon files, from a source checkout or an installed wheel."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

ICON = "trayproxy.png"
ERROR_ICON = "trayproxy-error.png"


def asset(name: str) -> Traversable:
    return resources.files("trayproxy.assets").joinpath(name)
