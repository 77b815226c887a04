"""``notes`` and ``compare``: what changed since the last release. Thin: the work is
``release.report.notes`` and ``release.report.compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def notes(
    spec: Annotated[Path, typer.Argument(help="The release spec (release.yaml).")] = Path(
        "release.yaml"
    ),
) -> None:
    """Print Markdown release notes: what changed since the last release."""
    from release.report.notes import notes_of
    from release.spec.schema import load_spec

    typer.echo(notes_of(load_spec(spec)), nl=False)


def compare(
    old: Annotated[Path, typer.Argument(help="The last release: manifest.json or results.")],
    new: Annotated[Path, typer.Argument(help="This release: manifest.json or results.")],
) -> int:
    """The regression gate on two sets of stored results; exit 1 when it would fail."""
    from release.report.compare import compare_files, comparison_markdown
    from release.spec.schema import EvalSpec

    verdict = compare_files(old, new)
    typer.echo(comparison_markdown(verdict, "old", "new", EvalSpec()), nl=False)
    return 0 if verdict.passed else 1
