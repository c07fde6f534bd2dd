"""Everything a desktop adds: the ``App`` controller (commands for the menu and the page),
the pystray adapter (``tray``, the only module importing pystray; it and ``desktop_entry``
draw with PIL), the menu as data, the single-instance lock, the config watcher, start at
login, the desktop entry, and opening files, URLs and the clipboard (``system``).

May import anything below it; only ``cli`` imports it.
"""
