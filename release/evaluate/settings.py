"""What the evaluate stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the checks receive it, so a setting the checks read is a
setting the key holds (``release.stages.evaluate``).

``eval.contamination`` is the contamination stage's (``release.stages.contamination``):
the object leaves it out, so the checks cannot read it and its settings do not rerun
this stage."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SerializationInfo, field_serializer, field_validator

from release.spec.schema import EvalSpec, ReleaseSpec


class EvaluateSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    eval: EvalSpec
    """The spec's eval section, less ``contamination`` (always None here)."""
    trust_remote_code: bool
    """``base.trust_remote_code``: the tokenizer and every model the checks and lm-eval
    load run the repo's own code when it is set."""

    @field_validator("eval")
    @classmethod
    def _without_contamination(cls, value: EvalSpec) -> EvalSpec:
        return value.model_copy(update={"contamination": None})

    @field_serializer("eval")
    def _dumped_without_contamination(self, value: EvalSpec, info: SerializationInfo) -> Any:
        """Not even its name: the key of a release before this object was the same."""
        return value.model_dump(mode=info.mode, exclude={"contamination"})

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        return cls(eval=spec.eval, trust_remote_code=spec.base.trust_remote_code)
