"""Stage: GGUF export."""

from __future__ import annotations

from release.stages.base import PendingStage


class GGUFStage(PendingStage):
    name = "gguf"
    title = "GGUF export"
    issue = "GGUF export"
