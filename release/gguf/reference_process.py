"""The merged model's reference, computed in a child process where no stage kept it.

The evaluate stage keeps the reference of the merged model it ran (``release.reference``);
the GGUF stage reads that and loads no model. Where the evaluate stage is off,
``ReferenceRun`` starts ``python -m release.gguf.reference_process`` when the stage
starts, so the child's imports and its one load of the merged model (in the checkpoint's
dtype, on the GPUs where there are some: ``release.reference.compute``) overlap the
export, and the stage waits for it (``wait``) before llama.cpp loads the first file: one
model resident at a time. The model's memory leaves with the child, and torch's OpenMP
threads sleep while they wait there (``child.child_env``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from release.core.errors import WorkError
from release.gguf.child import ChildDied, LineChild, serve
from release.reference.facts import ReferenceFacts


@dataclass(frozen=True)
class KeptReference:
    """A reference file and its record: the evaluate stage's, or one computed here."""

    facts: ReferenceFacts
    path: Path
    source: str
    """"evaluate" (the evaluate stage's run of the merged model) or "gguf" (this stage's)."""


class ReferenceRun:
    """The merged model's reference computed in a child, started on creation."""

    def __init__(
        self, model_dir: Path, model_id: str | None = None, heldout: Path | None = None
    ) -> None:
        """``heldout``: the release's held-out text (None: the shipped sample)."""
        self.model_dir = model_dir
        self._out = tempfile.TemporaryDirectory(prefix="reference-")
        self._child = LineChild(__name__, "transformers")
        message = {"model": str(model_dir), "out": self._out.name, "model_id": model_id}
        self._child.send(message | {"heldout": str(heldout) if heldout else None})
        self._kept: KeptReference | None = None

    def wait(self) -> KeptReference:
        """The reference, once the child wrote it (and let the model go)."""
        if self._kept is None:
            # no time limit: a large model on a CPU takes what it takes
            try:
                answer = self._child.receive()
            except ChildDied as died:
                self.close()
                raise WorkError(
                    f"{self.model_dir}: transformers could not run the merged model ({died})",
                    hint="rerun the merge stage (--force merge); if it fails again, report it",
                ) from None
            self._child.close()
            facts = ReferenceFacts.model_validate(answer)
            self._kept = KeptReference(facts, Path(self._out.name) / facts.file, "gguf")
        return self._kept

    def close(self) -> None:
        self._child.close()
        self._out.cleanup()


def _compute(message: dict) -> dict:
    from release.reference.compute import compute_reference
    from release.reference.heldout import heldout_text

    heldout = heldout_text(Path(message["heldout"]) if message["heldout"] else None)
    facts = compute_reference(
        Path(message["model"]), Path(message["out"]), model_id=message["model_id"], heldout=heldout
    )
    return facts.model_dump(mode="json")


if __name__ == "__main__":
    # imported before the request comes, while the stage exports: that is the point
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    serve(_compute)
