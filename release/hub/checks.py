"""What must hold before a single byte of a release is uploaded.

- Every card the push would publish lints without errors (``cards.lint``).
- Every file on disk is the file the manifest recorded: same size, same sha256. The
  hash is the one huggingface_hub computes for the upload itself
  (``CommitOperationAdd.upload_info``), so what is compared is what would be sent, and
  no file is hashed twice.

All of it is local: a dry run runs the same checks and needs no network and no token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from release.core.errors import WorkError
from release.hub.plan import PushPlan, RepoPlan

if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd


def lint_cards(plan: PushPlan) -> list[str]:
    """Lint every card of the plan; refuse on errors, return the warnings as lines."""
    from cards.lint import lint_card

    warnings: list[str] = []
    errors: list[str] = []
    for repo in plan.repos:
        card = repo.card
        assert card is not None, "build_plan guarantees a card per repo"
        for problem in lint_card(card.local.read_text(encoding="utf-8"), str(card.local)):
            line = f"{card.local}:{problem.line}: {problem.message}"
            (errors if problem.severity == "error" else warnings).append(line)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise WorkError(
            f"the card has errors, nothing was pushed: {errors[0]}{more}",
            hint="fix the card's inputs in release.yaml and rerun; "
            "`model-release card check` lists every problem",
        )
    return warnings


def prepare_additions(repo: RepoPlan) -> dict[str, CommitOperationAdd]:
    """One upload operation per planned file, each checked against the manifest."""
    from huggingface_hub import CommitOperationAdd

    additions: dict[str, CommitOperationAdd] = {}
    for planned in repo.files:
        if not planned.local.is_file():
            raise WorkError(
                f"{planned.local}: missing, though the manifest lists it",
                hint="rerun `model-release run` to rebuild the release",
            )
        operation = CommitOperationAdd(planned.path_in_repo, planned.local)
        actual = operation.upload_info.sha256.hex()
        if (operation.upload_info.size, actual) != (planned.size, planned.sha256):
            raise WorkError(
                f"{planned.local} changed after the manifest recorded it "
                f"(sha256 {actual[:12]}…, manifest {planned.sha256[:12]}…)",
                hint="rerun `model-release run` so the stage that made it runs again",
            )
        additions[planned.path_in_repo] = operation
    return additions
