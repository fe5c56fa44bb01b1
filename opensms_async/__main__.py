"""``python -m opensms_async`` runs the ``opensms`` command line."""

import sys

from ._cli import main

sys.exit(main())
