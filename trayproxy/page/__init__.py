"""The /_trayproxy/ page: its HTML and static files (``ui``, ``web/``) and the JSON API of
the routing log (``api``). Desktop actions reach it through ``gateway.state`` (the App
registers them), never through imports.

May import ``clients``, the gateway and everything below; never the desktop.
"""
