"""Sandbox (product, offline): `python -m roleops.sandbox ...` runs `roleops sandbox ...` (one parser, one flag set)."""

from __future__ import annotations

import sys

from roleops.cli import main

if __name__ == "__main__":
    sys.exit(main(["sandbox", *sys.argv[1:]]))
