"""What the card stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the cards' context is built from it, so a setting a card
shows is a setting the key holds (``release.stages.card``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SerializationInfo, field_serializer

from release.spec.schema import CardSpec, ReleaseSpec


class CardSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    base_model: str | None
    """base.repo_id: the merged and adapter cards' base_model."""
    card: CardSpec
    """The card section; card.gguf_template only where set, so a card keyed before there
    was one stays done (``_keyed``)."""
    pipeline_tag_given: bool
    """Whether card.pipeline_tag was written in the spec: left at its default, a model
    with a vision tower gets that tag instead."""
    repo_id: str | None
    gguf_repo_id: str | None
    adapter_repo_id: str | None
    """push's repo ids: each card's repo, the links between them; an adapter repo has a
    card of its own."""
    results: list[Path]
    """eval.results: the stored scores the cards show beside the produced ones."""

    @field_serializer("card")
    def _keyed(self, card: CardSpec, info: SerializationInfo) -> Any:
        unset = {"gguf_template"} if card.gguf_template is None else set()
        return card.model_dump(mode=info.mode, exclude=unset)

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        push = spec.push
        return cls(
            name=spec.name,
            base_model=spec.base.repo_id,
            card=spec.card,
            pipeline_tag_given="pipeline_tag" in spec.card.model_fields_set,
            repo_id=push.repo_id,
            gguf_repo_id=push.gguf_repo_id,
            adapter_repo_id=push.adapter_repo_id,
            results=list(spec.eval.results),
        )
