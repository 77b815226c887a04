"""Where model-release keeps things between runs."""

from __future__ import annotations

import os
from pathlib import Path


def relative_if_inside(path: str | Path, folder: Path | None) -> str:
    """``path`` relative to ``folder`` when it lies inside it, else unchanged: how the
    spec's folder (which may move: a copy, a CI checkout) is written in files we keep."""
    if folder is not None and Path(path).is_relative_to(folder):
        return os.path.relpath(path, folder)
    return str(path)


def cache_dir() -> Path:
    """$MODEL_RELEASE_CACHE, else $XDG_CACHE_HOME/model-release, else ~/.cache/model-release."""
    if explicit := os.environ.get("MODEL_RELEASE_CACHE"):
        return Path(explicit)
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "model-release"
