"""What the card stage records in the manifest (apart from the card context, so the
history, which the context imports, can name the card stage too)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from release.core.facts import StageFacts


class CardFacts(StageFacts):
    """The card stage: the cards it rendered (paths in its folder)."""

    stage: ClassVar[str] = "card"

    cards: list[str] = Field(default_factory=list)
