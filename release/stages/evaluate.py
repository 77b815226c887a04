"""Stage: Sanity eval."""

from __future__ import annotations

from release.stages.base import PendingStage


class EvaluateStage(PendingStage):
    name = "evaluate"
    title = "Sanity eval"
    issue = "sanity eval and the release gate"
