"""What the merge and adapter stages' domains read of the spec, one object each: a stage's
key is computed from its object and its domain receives it, so a setting the merge or
intake reads is a setting the key holds (``release.stages.merge``, ``release.stages.adapter``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    computed_field,
    field_serializer,
)

from release.spec.recipe import MergeRecipe
from release.spec.schema import AdapterSpec, BaseModelSpec, ReleaseSpec


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


class IntakeSettings(BaseModel):
    """What adapter intake reads of the spec (``release.merge.intake``): the adapter
    stage's key is this object's dump, byte for byte the key it held before there was
    an object (``allow_pickle`` and ``allow_fingerprint_mismatch`` at its top). A merge
    recipe's release has no adapter: intake checks the base alone, and the key holds
    ``base`` and ``allow_fingerprint_mismatch``."""

    model_config = ConfigDict(frozen=True)

    base: BaseModelSpec
    adapter: AdapterSpec | None = Field(
        exclude_if=lambda adapter: adapter is None or adapter.repo_id is None
    )
    """A Hub adapter is keyed by its repo id and revision; a local one by its files (the
    stage's input files), not by where it lies, so a moved release keeps its intake.
    None for a merge recipe's release."""
    previous: list[Path] = Field(exclude=True)
    """eval.previous: the manifests whose recorded base fingerprint intake compares with,
    keyed by their content (the stage's input files)."""

    @field_serializer("adapter")
    def _pinned(self, adapter: AdapterSpec, info: SerializationInfo) -> Any:
        """Its path is keyed by the files, its allow_pickle beside it (``allow_pickle``)."""
        return adapter.model_dump(mode=info.mode, exclude={"path", "allow_pickle"})

    @computed_field(exclude_if=lambda allow: allow is None)  # type: ignore[prop-decorator]
    @property
    def allow_pickle(self) -> bool | None:
        """adapter.allow_pickle, where the key has always held it (None without one)."""
        return self.adapter.allow_pickle if self.adapter else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def allow_fingerprint_mismatch(self) -> bool:
        """base.allow_fingerprint_mismatch, named at the key's top as it always was."""
        return self.base.allow_fingerprint_mismatch

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        return cls(base=spec.base, adapter=spec.adapter, previous=list(spec.eval.previous))
