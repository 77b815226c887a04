"""What the push stage's domain reads of the spec, as one object: the stage's key is
computed from this object and the plan, the gate check and the release notes receive
it, so a setting the push reads is a setting the key holds (``release.stages.push``).

Its dump is the key the push always had (name, version and push's fields side by side);
the three eval settings the push reads are in it where they differ from their defaults,
so a workspace keyed before them keeps its push done.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    field_serializer,
    model_serializer,
)
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from release.spec.schema import EvalSpec, PushSpec, ReleaseSpec


class PushGate(BaseModel):
    """Of the eval section, what the push reads: whether an evaluation gate checks the
    release (without one the push warns, with one it asks for its verdict), and the
    limits the release notes state beside the scores (``release.report.notes``)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool
    max_task_drop: float
    max_average_drop: float

    @classmethod
    def of(cls, section: EvalSpec) -> Self:
        return cls(
            enabled=section.enabled,
            max_task_drop=section.max_task_drop,
            max_average_drop=section.max_average_drop,
        )


_DEFAULT_GATE = PushGate.of(EvalSpec())


class PushSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    tag: str = Field(exclude=True)
    """The release's tag (``ReleaseSpec.tag``), keyed by the version it is made of."""
    push: PushSpec
    """The repos, their visibility, whether to tag: the key holds its fields beside name
    and version (``_keyed``)."""
    eval: PushGate = Field(exclude_if=lambda gate: gate == _DEFAULT_GATE)

    @field_serializer("eval")
    def _changed(self, gate: PushGate, info: SerializationInfo) -> Any:
        """The settings that differ from their defaults (keyed by their absence)."""
        return {
            name: value
            for name, value in gate.model_dump(mode=info.mode).items()
            if value != getattr(_DEFAULT_GATE, name)
        }

    @model_serializer(mode="wrap")
    def _keyed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        return {**dumped.pop("push"), **dumped}

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        return cls(
            name=spec.name,
            version=spec.version,
            tag=spec.tag,
            push=spec.push,
            eval=PushGate.of(spec.eval),
        )
