"""What the contamination stage's domain reads of the spec, as one object: the stage's
key is computed from this object and the check receives it, so a setting the check reads
is a setting the key holds (``release.stages.contamination``).

Of eval.tasks the check reads which tasks the card reports (names, or the folder's), not
how lm-eval runs them: a new few-shot count or limit leaves it done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SerializationInfo, field_serializer

from release.spec.schema import ContaminationSpec, ReleaseSpec


class ReportedTasks(BaseModel):
    """eval.tasks as the check reads it: which tasks, and the folder of their YAML."""

    model_config = ConfigDict(frozen=True)

    names: list[str]
    folder: Path | None


class ContaminationSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    contamination: ContaminationSpec
    """eval.contamination: the training data, the methods, the gate, and ``memory_cap``,
    which decides where the index lies (memory or disk), not what the check finds: the
    one setting it reads that its key leaves out (``_keyed``)."""
    tasks: ReportedTasks | None
    results: list[Path]
    """eval.results: their tasks are reported too."""

    @field_serializer("contamination")
    def _keyed(self, value: ContaminationSpec, info: SerializationInfo) -> Any:
        return value.model_dump(mode=info.mode, exclude={"memory_cap"})

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        assert spec.eval.contamination is not None  # the stage is skipped without it
        tasks = spec.eval.tasks
        return cls(
            contamination=spec.eval.contamination,
            tasks=ReportedTasks(names=tasks.names, folder=tasks.folder) if tasks else None,
            results=list(spec.eval.results),
        )
