"""Stage: Merge."""

from __future__ import annotations

from release.stages.base import PendingStage


class MergeStage(PendingStage):
    name = "merge"
    title = "Merge"
    issue = "adapter intake and merge"
