"""Card: the model card's metadata and prose, a live preview and lint results."""

from __future__ import annotations

from release.tui.panes.base import StepPane


class CardPane(StepPane):
    stage = "card"
    heading = "Model card"
    purpose = "What the Hub shows: metadata, prose, and every measured number."
    run_label = "write the card"
