"""The workspace's identity: the tool writes, replaces and removes only in a folder it made.

A run replaces ``<workspace>/<stage>`` folders and clears ``.partial-*`` leftovers there,
so a workspace pointed at the user's own folder (``workspace: .`` beside the adapter, or
``/``) would lose their files. ``claim_workspace`` lets a run use a folder only when it is
empty or missing (then it is marked as ours with ``MARKER_NAME``), or already marked; a
workspace of an older model-release (a manifest of ours, no marker) is marked on its
first run. It refuses ``/``, the home folder and any folder that is or holds an input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from release.core.errors import InputError

MARKER_NAME = ".model-release-workspace"
MARKER_TEXT = "This folder is a model-release workspace: the tool replaces what is in it.\n"


def claim_workspace(workspace: Path, inputs: Iterable[Path], manifest_name: str) -> None:
    """Refuse ``workspace`` unless the tool may write there; create and mark it if new."""
    folder = workspace.absolute().resolve()
    hint = "set `workspace:` in release.yaml to a new folder of its own, e.g. build"
    if folder == Path(folder.anchor) or folder == Path.home().resolve():
        raise InputError(f"{workspace}: the workspace may not be / or the home folder", hint=hint)
    for path in inputs:
        source = path.absolute().resolve()
        if source == folder or source.is_relative_to(folder):
            raise InputError(
                f"{workspace}: the workspace holds the input {path}; the tool would replace "
                "files in it",
                hint=hint,
            )
    if folder.is_dir():
        if (folder / MARKER_NAME).is_file():
            return
        entries = list(folder.iterdir())
        if entries and not _older_workspace(folder / manifest_name):
            raise InputError(
                f"{workspace}: the workspace is not empty and was not made by model-release "
                f"(no {MARKER_NAME} in it)",
                hint=hint,
            )
    elif folder.exists():
        raise InputError(f"{workspace}: the workspace is a file, not a folder", hint=hint)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER_NAME).write_text(MARKER_TEXT, encoding="utf-8")


def _older_workspace(manifest: Path) -> bool:
    """A workspace an older model-release made: its manifest is ours."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("stages"), dict)
