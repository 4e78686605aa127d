"""``python -m xlmvar.cli``: the ``xlmvar`` command."""

import sys

from . import main

sys.exit(main())
