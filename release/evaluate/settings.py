"""What the evaluate stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the checks receive it, so a setting the checks read is a
setting the key holds (``release.stages.evaluate``).

``eval.contamination`` is the contamination stage's (``release.stages.contamination``):
the object leaves it out, so the checks cannot read it and its settings do not rerun
this stage; ``eval.tasks.gguf`` is the GGUF stage's (``release.gguf.settings``), left
out likewise. A release of one adapter (no merge.recipe) is keyed as it always was: its
dump names neither the recipe nor eval.gate (the recipe's gate, unread without one)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    field_serializer,
    field_validator,
)

from release.spec.recipe import MergeRecipe
from release.spec.schema import EvalSpec, ReleaseSpec

KeyedRecipe = Annotated[
    MergeRecipe | None,
    PlainSerializer(lambda recipe: recipe.key() if recipe else None, when_used="json"),
]


class EvaluateSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    eval: EvalSpec
    """The spec's eval section, less ``contamination`` (always None here)."""
    trust_remote_code: bool
    """``base.trust_remote_code``: the tokenizer and every model the checks and lm-eval
    load run the repo's own code when it is set."""
    recipe: KeyedRecipe = Field(default=None, exclude_if=lambda recipe: recipe is None)
    """``merge.recipe``: the merged model is measured beside each of its inputs."""

    @field_validator("eval")
    @classmethod
    def _without_contamination(cls, value: EvalSpec) -> EvalSpec:
        return value.model_copy(update={"contamination": None})

    @field_serializer("eval")
    def _dumped_without_contamination(self, value: EvalSpec, info: SerializationInfo) -> Any:
        """Not even its name; nor, without a recipe, its gate's; nor eval.tasks.gguf (the
        GGUF stage's, which runs them on its files)."""
        leave: dict[str, Any] = {"contamination": True, "tasks": {"gguf"}}
        leave |= {} if self.recipe is not None else {"gate": True}
        return value.model_dump(mode=info.mode, exclude=leave)

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        return cls(
            eval=spec.eval,
            trust_remote_code=spec.base.trust_remote_code,
            recipe=spec.merge.recipe,
        )
