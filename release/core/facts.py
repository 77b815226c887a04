"""Typed facts: what each stage measured, as a record its readers name by field.

A stage returns its facts as a ``StageFacts`` subclass; the runner files them in the
manifest under the record's ``stage``, as JSON. Readers (the card, the GitHub summary,
the wizard, the next release's gate) read them back with ``Record.of(manifest)``: a typed
record, never ``facts.get("...")`` strings. Every field has a default, since a manifest
written by an older model-release (a previous release's, read by the gate) may lack
what a newer one records; unknown keys are ignored for the same reason.

The record is also the one home of its stage's name: ``Stage.name`` reads it from there.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from release.core.manifest import Manifest


class Facts(BaseModel):
    """A part of a stage's facts (a check's numbers and verdict)."""

    model_config = ConfigDict(extra="ignore")


class StageFacts(Facts):
    stage: ClassVar[str]

    @classmethod
    def of(cls, manifest: Manifest | None) -> Self | None:
        """The stage's facts in ``manifest``; None when the stage has not run."""
        record = manifest.stages.get(cls.stage) if manifest else None
        return cls.model_validate(record.facts) if record else None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
