"""What happened: one ``RouteRecord`` per request (``logbook``, a ring buffer with
subscribers), the SQLite history written by a thread of its own (``history``), the log file
and console lines (``logfile``), and the terminal tables of ``trayproxy logs`` / ``usage``
(``terminal``).

May import ``core``; never the gateway, the page or the desktop.
"""
