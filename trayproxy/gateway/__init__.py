"""One client request end to end: ``guard`` (Host, Origin, content type, token),
``handler`` (read the body once, resolve the route), ``attempts`` (one per route, fallbacks),
``stream`` (relaying a streamed answer), ``upstream`` (the provider request: URL, headers,
key), ``provider_client`` (the aiohttp client session), ``provider_errors`` and ``errors``
(what the client sees), ``state`` (what requests share).

May import ``records``, ``routing``, ``providers``, ``config`` and ``core``; never the page,
the client set-up or the desktop.
"""
