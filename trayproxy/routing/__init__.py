"""Which provider and upstream model serve a client's model id (``resolve``): exact
mappings, the provider prefix, fallbacks, and the nearest ids for a typo. Pure functions.

May import ``config`` and ``core``.
"""
