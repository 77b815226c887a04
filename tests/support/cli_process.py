"""The CLI run as a user runs it: in a process of its own, its output read whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    """``model-release ARGS`` on this checkout's code, in the test's environment.

    Without a terminal rich wraps at 80 columns; COLUMNS gives it a wide one, so a long
    path stays on its line, as in a user's terminal.
    """
    return subprocess.run(
        [sys.executable, "-m", "release.cli", *args],
        cwd=REPO,  # `-m` imports release from here, not from an installed copy
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
