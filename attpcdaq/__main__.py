"""``python -m attpcdaq``: the same as the ``attpcdaq`` command."""

import sys

from .cli import main

sys.exit(main())
