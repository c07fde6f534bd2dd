"""A string that never shows itself in ``repr``, ``str``, logs or tracebacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

REDACTED = "[redacted]"
SLICE = 8


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: call this only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> object:
        raise TypeError("a Secret cannot be pickled")


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that hides every secret, and every 8-character slice of one, in a text.

    Providers echo parts of a rejected key in their error messages ("Incorrect API key
    provided: sk-abc...xyz"); slices catch those too.
    """
    needles: set[str] = set()
    for value in secrets:
        if len(value) < SLICE:
            if value:
                needles.add(value)
            continue
        needles.add(value)
        needles.update(value[i : i + SLICE] for i in range(len(value) - SLICE + 1))
    ordered = sorted(needles, key=len, reverse=True)

    def redact(text: str) -> str:
        if not ordered or not text:
            return text
        for needle in ordered:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    return redact
