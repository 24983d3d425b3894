"""``python -m edgeai`` runs the command line."""

import sys

from edgeai.cli import main

sys.exit(main())
