"""``python -m sim ...``: the same as ``mesh sim ...``."""

import sys

from sim.cli import main

sys.exit(main())
