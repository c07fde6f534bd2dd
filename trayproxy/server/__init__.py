"""The running proxy: the aiohttp application, its routes and middleware (``app``), the
loop thread that serves it with thread-safe start / apply / rebind / stop
(``proxy_server``), and JSON answers to requests aiohttp cannot parse (``parse_errors``).

May import the page, the gateway and everything below; never the desktop.
"""
