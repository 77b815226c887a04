"""What several commands share: typed options and the one ``Output`` they print through."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from release.report.console import Output

SpecArg = Annotated[Path, typer.Argument(help="The release spec (release.yaml).")]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print each event as one JSON object per line on stdout (type, stage, "
        "done/total/unit/message, facts; a failure's one-line error), for CI tools; "
        "nothing else goes to stdout (no GitHub Actions job summary).",
    ),
]
ExpectVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--expect-version",
        help="Refuse (exit 2) unless release.yaml's version is this one, e.g. the tag "
        "that triggered the workflow (v1.2.0 or 1.2.0).",
    ),
]
output = Output()
"""Every command prints through this (redacted; errors to stderr)."""
