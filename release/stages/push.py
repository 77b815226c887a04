"""Stage: Push to the Hub."""

from __future__ import annotations

from release.stages.base import PendingStage


class PushStage(PendingStage):
    name = "push"
    title = "Push to the Hub"
    issue = "push to the Hub"
