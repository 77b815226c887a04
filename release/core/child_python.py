"""How this Python starts itself as a child process: never from the user's folder.

``python -m release.x`` and ``python -c`` put the working directory first on
``sys.path``. A release run from a folder that holds a ``release`` or ``cards`` folder
(a workspace named ``release``, card templates in ``cards/``) would then import that
folder, as a namespace package, instead of this project's: the child fails at its first
import. ``-P`` (Python 3.11's safe path) leaves the working directory out.
"""

from __future__ import annotations

import sys

PYTHON = (sys.executable, "-P")
"""The command line's start for a child that runs this Python."""
