"""Stage: Adapter intake."""

from __future__ import annotations

from release.stages.base import PendingStage


class AdapterStage(PendingStage):
    name = "adapter"
    title = "Adapter intake"
    issue = "adapter intake and merge"
