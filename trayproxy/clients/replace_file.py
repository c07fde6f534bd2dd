"""Replacing a client's own config file safely: read as text (its line endings kept), a
timestamped backup of the old one, then the new one written in one atomic step, and nothing
written when the other program changed the file meanwhile."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path


class ReplaceError(ValueError):
    pass


def read_text(path: Path) -> tuple[str, str]:
    """The file's text with LF line endings, and the line ending it uses."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReplaceError(
            f"byte {exc.start}: the file is not UTF-8 text; it was left as it is"
        ) from None
    newline = "\r\n" if "\r\n" in text else "\n"
    return text.replace("\r\n", "\n"), newline


def replace(target: Path, old: str, new: str, newline: str, *, exists: bool) -> Path | None:
    """Write ``new`` over ``target`` (whose text was ``old``), after a backup of it when it
    exists; returns the backup."""
    backup = None
    if exists:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = target.with_name(f"{target.name}.bak-{stamp}")
        n = 1
        while backup.exists():
            n += 1
            backup = target.with_name(f"{target.name}.bak-{stamp}-{n}")
        shutil.copy2(target, backup)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        if exists:
            shutil.copymode(target, tmp)
            if read_text(target)[0] != old:
                raise ReplaceError("it changed while trayproxy was merging; run again")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
