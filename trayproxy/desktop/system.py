"""The desktop around trayproxy: the clipboard, the browser, files and folders.

Each function returns ``(ok, message)`` for the user instead of raising: the tray shows the
message as a notification.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import webbrowser
from pathlib import Path

Result = tuple[bool, str]


def copy_text(text: str) -> Result:
    """Put ``text`` on the OS clipboard."""
    try:
        if _gtk_clipboard(text):
            return True, "copied"
        for cmd in _clipboard_commands():
            if shutil.which(cmd[0]):
                _feed(cmd, text)
                return True, "copied"
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"the clipboard tool failed: {exc}"
    if sys.platform.startswith("linux"):
        return False, "no clipboard tool found: install wl-clipboard (Wayland) or xclip (X11)"
    return False, "no clipboard available"


def _gtk_clipboard(text: str) -> bool:
    """Use GTK's clipboard when the tray already runs GTK (its main loop serves the data)."""
    gtk = sys.modules.get("gi.repository.Gtk")
    gdk = sys.modules.get("gi.repository.Gdk")
    if gtk is None or gdk is None or not os.environ.get("DISPLAY"):
        return False
    try:
        clipboard = gtk.Clipboard.get(gdk.SELECTION_CLIPBOARD)
        clipboard.set_text(text, -1)
        clipboard.store()
    except Exception:
        return False
    return True


def _clipboard_commands() -> list[list[str]]:
    if sys.platform == "darwin":
        return [["pbcopy"]]
    if sys.platform == "win32":
        return [["clip"]]
    cmds = []
    if os.environ.get("WAYLAND_DISPLAY"):
        cmds.append(["wl-copy"])
    if os.environ.get("DISPLAY"):
        cmds += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    return cmds


def _feed(cmd: list[str], text: str) -> None:
    data = text.encode("utf-16" if cmd[0] == "clip" else "utf-8")
    # xclip and xsel stay behind to serve the selection: don't wait on their output pipes.
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    proc.wait(timeout=5)


def open_url(url: str) -> Result:
    try:
        webbrowser.open(url)
    except Exception as exc:  # webbrowser raises whatever its backends raise
        return False, f"could not start a browser: {exc}; open {url} yourself"
    return True, f"opened {url}"


def open_path(path: Path, *, edit: bool = False) -> Result:
    """Open a file in its default application (a text editor when ``edit``) or a folder."""
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows only
            try:
                os.startfile(path, "edit" if edit else "open")  # type: ignore[attr-defined]
            except OSError:
                if not edit:
                    raise
                subprocess.Popen(["notepad.exe", str(path)])
        elif sys.platform == "darwin":
            return _launch(["open", "-t", str(path)] if edit else ["open", str(path)], path)
        else:
            opener = shutil.which("xdg-open")
            if opener is None:
                return False, f"xdg-open is not installed; the path is {path}"
            return _launch([opener, str(path)], path)
    except OSError as exc:
        return False, f"could not open {path}: {exc}"
    return True, f"opened {path}"


# xdg-open and open hand the file to an application and exit: their exit status says whether
# one took it. Some xdg-open fallbacks run the application itself and stay; past this wait,
# that is taken as opened.
LAUNCH_WAIT = 2.0
_XDG_OPEN_STATUS = {
    2: "it does not exist",
    3: "no application is set up to open it",
    4: "the application could not open it",
}


def _launch(cmd: list[str], path: Path) -> Result:
    """Run an opener; its failure said in words, and never left behind as a zombie."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, err = proc.communicate(timeout=LAUNCH_WAIT)
    except subprocess.TimeoutExpired:  # still running: reaped when it ends
        threading.Thread(target=proc.communicate, name="opener", daemon=True).start()
        return True, f"opened {path}"
    if proc.returncode == 0:
        return True, f"opened {path}"
    said = err.decode("utf-8", "replace").strip().splitlines()
    why = _XDG_OPEN_STATUS.get(proc.returncode) or (
        said[-1] if said else f"{Path(cmd[0]).name} exited with status {proc.returncode}"
    )
    return False, f"could not open {path}: {why}"
