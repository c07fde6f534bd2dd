"""What each provider needs: ``profiles`` (a table of quirks, picked by name or host,
overridable in TOML) and ``dialect`` (the request and answer rewrites those quirks drive).
A provider quirk is fixed here.

Pure (bytes and dicts in, bytes and dicts out). May import ``core`` only.
"""
