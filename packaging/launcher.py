"""Entry point of the double-click builds (PyInstaller runs this file)."""

import sys

from trayproxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
