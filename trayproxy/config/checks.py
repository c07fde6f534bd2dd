"""Checking one value of config.toml at a key path: a wrong type, a number out of range, an
unknown key (with the nearest known one) become a :class:`ConfigError` at ``file:line``."""

from __future__ import annotations

import difflib
from typing import Any

from trayproxy.config.lines import format_key_path, line_of
from trayproxy.config.model import ConfigError


class Checker:
    """Turns a problem at a key path into a located ConfigError."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.warnings: list[str] = []

    def warn(self, path: tuple[str, ...], problem: str) -> None:
        """Valid, but probably not what was meant: said, not refused."""
        self.warnings.append(str(self.fail(path, problem)))

    def fail(self, path: tuple[str, ...], problem: str) -> ConfigError:
        return ConfigError(
            problem, file=self.file, line=line_of(self.text, path), key=format_key_path(path)
        )

    def table(self, value: Any, path: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {kind(value)}")
        return value

    def only_keys(
        self, table: dict[str, Any], path: tuple[str, ...], known: frozenset[str]
    ) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, sorted(known), n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                allowed = ", ".join(sorted(known))
                raise self.fail((*path, key), f"unknown key{extra}; allowed here: {allowed}")

    def string(self, table: dict[str, Any], path: tuple[str, ...], key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail((*path, key), f"must be a string, not {kind(value)}")
        return value

    def number(
        self,
        table: dict[str, Any],
        path: tuple[str, ...],
        key: str,
        *,
        integer: bool,
        low: float,
        high: float,
    ) -> Any:
        value = table.get(key)
        if value is None:
            return None
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            want = "an integer" if integer else "a number"
            raise self.fail((*path, key), f"must be {want}, not {kind(value)}")
        if not low <= value <= high:
            raise self.fail((*path, key), f"must be between {low:g} and {high:g}, not {value}")
        return value

    def boolean(self, table: dict[str, Any], path: tuple[str, ...], key: str) -> bool | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail((*path, key), f"must be true or false, not {kind(value)}")
        return value


def kind(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        dict: "a table",
        list: "an array",
    }.get(type(value), type(value).__name__)
