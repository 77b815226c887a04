"""``python -m release.cli``: the same as the ``model-release`` command."""

import sys

from release.cli import main

sys.exit(main())
