"""Setting up and checking clients of trayproxy: a Continue ``config.yaml``
(``continue_config``) and the health of every mapping (``doctor``).

May import the gateway and everything below it; never the page or the desktop.
"""
