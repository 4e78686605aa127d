"""``python -m xlmvar``: the command line (see :mod:`xlmvar.cli`)."""

import sys

from .cli import main

sys.exit(main())
