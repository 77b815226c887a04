"""What the evaluate stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the checks receive it, so a setting the checks read is a
setting the key holds (``release.stages.evaluate``)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict

from release.spec.schema import EvalSpec, ReleaseSpec


class EvaluateSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    eval: EvalSpec
    trust_remote_code: bool
    """``base.trust_remote_code``: the tokenizer and every model the checks and lm-eval
    load run the repo's own code when it is set."""

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        return cls(eval=spec.eval, trust_remote_code=spec.base.trust_remote_code)
