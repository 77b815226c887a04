"""Stage: Model card."""

from __future__ import annotations

from release.stages.base import PendingStage


class CardStage(PendingStage):
    name = "card"
    title = "Model card"
    issue = "model cards"
