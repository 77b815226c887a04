"""How this Python starts itself as a child process: importing this very project.

``python -m release.x`` and ``python -c`` put the working directory first on
``sys.path``. A release run from a folder that holds a ``release`` or ``cards`` folder
(a workspace named ``release``, card templates in ``cards/``) would then import that
folder, as a namespace package, instead of this project's: the child fails at its first
import. ``-P`` (Python 3.11's safe path) leaves the working directory out, and the
folder holding this ``release`` goes first on the child's ``PYTHONPATH``, so the child
runs the same code as its parent (a source checkout run in place, not only the
installed copy).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PYTHON = (sys.executable, "-P")
"""The command line's start for a child that runs this Python."""

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``release`` package this process imported."""


def project_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with ``PROJECT_ROOT`` first on ``PYTHONPATH``."""
    env = dict(os.environ if env is None else env)
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}
