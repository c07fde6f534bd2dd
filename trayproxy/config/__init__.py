"""The config file: TOML text -> a validated, frozen ``Config`` (``parse``), with
``file:line: key: problem`` errors (``lines``), and where trayproxy keeps its files
(``paths``, the first-run ``template.toml``).

May import ``core`` and ``providers.profiles``.
"""
