"""What the merge stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the merge receives it, so a setting the merge reads is a
setting the key holds (``release.stages.merge``)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from release.spec.recipe import MergeRecipe
from release.spec.schema import BaseModelSpec, ReleaseSpec


class MergeSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    base: BaseModelSpec
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    shard_size: int
    recipe: Annotated[
        MergeRecipe | None,
        PlainSerializer(lambda recipe: recipe.key() if recipe else None, when_used="json"),
    ] = Field(default=None, exclude_if=lambda recipe: recipe is None)
    """merge.recipe, keyed as ``MergeRecipe.key`` says (a mask file by its name); absent
    from the key when unset, as it always was."""

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        merge = spec.merge
        return cls(
            base=spec.base, dtype=merge.dtype, shard_size=merge.shard_size, recipe=merge.recipe
        )
