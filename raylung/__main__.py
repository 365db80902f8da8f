"""``python -m raylung`` runs the ``raylung`` command."""

import sys

from raylung.cli import main

sys.exit(main())
