"""``python -m symode``: the command-line interface."""

import sys

from symode.cli.main import main

sys.exit(main())
