"""The release wizard: a Textual front end over the same runner and cards code as the CLI.

Nothing in this package decides how a release is made. It edits the spec (and saves it
as release.yaml, so the CLI can repeat the release), runs ``release.runner.run_release``
in a thread worker, and shows the events and the manifest's facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def run_wizard(target: Path | Sequence[Path] | None = None) -> None:
    """Open the wizard on a release.yaml, an adapter folder, several folders to merge,
    or the current folder."""
    from release.tui.app import make_wizard

    make_wizard(target).run()
