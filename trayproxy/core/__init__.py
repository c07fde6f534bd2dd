"""Pure helpers every layer may use: secrets that hide themselves, JSON bodies with the
standard library's meaning, SSE framing, token usage, text tables, background threads.

Imports nothing from the rest of trayproxy.
"""
