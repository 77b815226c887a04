"""Where model-release keeps things between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$MODEL_RELEASE_CACHE, else $XDG_CACHE_HOME/model-release, else ~/.cache/model-release."""
    if explicit := os.environ.get("MODEL_RELEASE_CACHE"):
        return Path(explicit)
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "model-release"
