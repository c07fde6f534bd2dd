"""Icons, installed as ``trayproxy.assets``; regenerate them with ``make_icons.py``."""
