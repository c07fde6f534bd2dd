"""What happened: one ``RouteRecord`` per request (``logbook``, a ring buffer with
subscribers), the SQLite history written by a thread of its own (``history``; its schema
steps in ``migrations``), reading it back and its statistics, once, in SQL, with the one
rule for a failed request (``queries``), the log file and console lines (``logfile``), and
the terminal tables of ``trayproxy logs`` / ``usage`` (``terminal``).

May import ``core``; never the gateway, the page or the desktop.
"""
