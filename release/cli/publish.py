"""``publish``: hand a release to the repository's GitHub workflow, then follow its run.
Thin: the work is ``release.publish``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from release.cli.options import SpecArg, output


def publish(
    spec: SpecArg = Path("release.yaml"),
    remote: Annotated[str, typer.Option(help="The git remote to push to.")] = "origin",
    action: Annotated[
        str | None,
        typer.Option(
            help="The action the written workflow uses (owner/repo@ref); default: "
            "model-release's own.",
        ),
    ] = None,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Push and return; do not follow the run.")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between two looks at the run (default 5).", min=0.0),
    ] = None,
) -> int:
    """Publish through GitHub Actions: commit release.yaml and the stored results (and
    .github/workflows/release.yml if no workflow runs model-release), tag v<version> and
    push both; the repository's workflow then releases on a runner. Then follow that
    run to its end, through the GitHub CLI when it is logged in, else with GITHUB_TOKEN
    or GH_TOKEN; exit 1 unless it succeeds. `push` publishes from this machine instead."""
    from release.publish.follow import follow_published
    from release.publish.tag_push import ACTION_REF
    from release.publish.tag_push import publish as publish_release
    from release.spec.schema import load_spec

    done = publish_release(load_spec(spec), remote=remote, action=action or ACTION_REF)
    if done.workflow_written:
        output.info("wrote .github/workflows/release.yml (it needs the secret HF_TOKEN)")
    if no_follow:
        output.info(f"{done.summary}; {done.follow_hint}")
        return 0
    try:
        follow_published(done, output.info, interval=interval)
    except KeyboardInterrupt:
        where = done.github.actions_url if done.github else done.remote
        output.info(f"stopped following; the run goes on: {where}")
        return 130
    return 0
