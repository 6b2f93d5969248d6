"""Sandbox (product, offline): `python -m roleops.sandbox ...`, the same flags and exit codes as `roleops sandbox`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
