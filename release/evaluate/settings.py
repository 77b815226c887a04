"""What the evaluate stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the checks receive it, so a setting the checks read is a
setting the key holds (``release.stages.evaluate``)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, PlainSerializer

from release.spec.recipe import MergeRecipe
from release.spec.schema import EvalSpec, ReleaseSpec

KeyedRecipe = Annotated[
    MergeRecipe | None,
    PlainSerializer(lambda recipe: recipe.key() if recipe else None, when_used="json"),
]


class EvaluateSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    eval: EvalSpec
    trust_remote_code: bool
    """``base.trust_remote_code``: the tokenizer and every model the checks and lm-eval
    load run the repo's own code when it is set."""
    recipe: KeyedRecipe = None
    """``merge.recipe``: the merged model is measured beside each of its inputs."""

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        return cls(
            eval=spec.eval,
            trust_remote_code=spec.base.trust_remote_code,
            recipe=spec.merge.recipe,
        )
