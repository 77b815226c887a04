"""The reference's record in the manifest, and the identity of the model it is of."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from pydantic import Field

from release.core.facts import Facts
from release.core.manifest import FileRecord

REFERENCE_FILE = "reference.safetensors"


class ReferenceSetFacts(Facts):
    """One named set of sequences in the file."""

    name: str
    sequences: int
    positions: int


class ReferenceFacts(Facts):
    """The merged model's reference (``release.reference.store``), as its stage kept it."""

    file: str = REFERENCE_FILE
    """Within the folder of the stage that wrote it."""
    model: str | None = None
    """The merged model it is of (``model_identity``); None where no stage recorded it."""
    probe: str
    """``ProbeSet.digest`` of the probe it ran."""
    dtype: str
    device: str
    top_k: int
    vocab_rows: int
    sets: list[ReferenceSetFacts] = Field(default_factory=list)
    heldout_text: str | None = None
    """The held-out text whose chunks are the ``heldout`` set (``reference.heldout``)."""
    heldout_limited: str | None = None
    """Why fewer of its tokens were read than a GPU reads (``HeldoutText.limited``)."""
    smoke_prompt: str
    smoke_answer: str
    bytes: int

    def matches(self, model: str | None, probe: str) -> bool:
        """Whether it is the reference of ``model`` (a known identity) on ``probe``."""
        return model is not None and self.model == model and self.probe == probe


def model_identity(outputs: Iterable[FileRecord]) -> str:
    """The merged model as the merge stage recorded it: its files' paths and sha256."""
    files = sorted((record.path, record.sha256) for record in outputs)
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()
