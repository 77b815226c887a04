"""What the GGUF stage's domain reads of the spec, as one object: the stage's key is
computed from this object and ``build_gguf_files`` receives it, so a setting the export
reads is a setting the key holds (``release.stages.gguf``).

The header's ``general.*`` keys come from the release (``release.gguf.metadata``): its
name, version, licence, base model, tags, languages, datasets and the repo the files are
published to (``general.repo_url``: push.gguf_repo_id, else push.repo_id). A new repo id
is a new header, so it reruns the export; the stage's status says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from release.spec.schema import ReleaseSpec, TasksSpec


class GGUFSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    types: list[str]
    """gguf.types, each once, in the spec's order."""
    llama_cpp_dir: Path | None
    name: str
    version: str
    license: str | None
    base_model: str | None
    repo_id: str | None
    """Where the files are published: ``general.repo_url`` of every file."""
    tags: list[str]
    language: list[str]
    datasets: list[str]
    max_kld: float
    """gguf.max_kld: a file passed under one limit may not under another."""
    heldout_text: Path | None
    """eval.heldout_text: the text a reference computed here is measured on (the quants'
    loss), where the evaluate stage kept none."""
    benchmarks: TasksSpec | None = Field(default=None, exclude_if=lambda v: v is None)
    """eval.tasks, where eval.tasks.gguf names types: the files of those types run its
    tasks after the checks (what the harness reads of it; absent without, so a release
    that names none is keyed as it always was)."""
    max_task_drop: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """gguf.max_task_drop, where the files run the tasks (absent without, likewise)."""

    @property
    def benchmarked_types(self) -> list[str]:
        return list(dict.fromkeys(self.benchmarks.gguf)) if self.benchmarks else []

    @classmethod
    def of(cls, spec: ReleaseSpec) -> Self:
        benchmarks = _benchmarks(spec.eval.tasks) if spec.eval.enabled else None
        return cls(
            types=list(dict.fromkeys(spec.gguf.types)),
            llama_cpp_dir=spec.gguf.llama_cpp_dir,
            name=spec.name,
            version=spec.version,
            license=spec.card.license,
            base_model=spec.base.repo_id,
            repo_id=spec.push.gguf_repo_id or spec.push.repo_id,
            tags=list(spec.card.tags),
            language=list(spec.card.language),
            datasets=list(spec.card.datasets),
            max_kld=spec.gguf.max_kld,
            heldout_text=spec.eval.heldout_text,
            benchmarks=benchmarks,
            max_task_drop=spec.gguf.max_task_drop if benchmarks else None,
        )


def _benchmarks(tasks: TasksSpec | None) -> TasksSpec | None:
    """eval.tasks as the GGUF files run them: none without eval.tasks.gguf; the merged
    model's backend and its base's comparison are not theirs."""
    if tasks is None or not tasks.gguf:
        return None
    return tasks.model_copy(update={"backend": "hf", "compare_base": False})
