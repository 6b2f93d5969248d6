"""Entry point for `python -m roleops`."""

import sys

from roleops.cli import main

sys.exit(main())
