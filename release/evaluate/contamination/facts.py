"""What the contamination stage records in the manifest: what was compared, how, and
what was found, task by task; the card, the job summary and the wizard read it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from release.core.facts import Facts, StageFacts


class MethodFacts(Facts):
    key: str
    """What its counts go under: exact, substring, word_13grams, char_50grams…"""
    label: str
    """Its column on the card: Exact, Substring, Word 13-grams, Char 50-grams…"""
    description: str
    n: int | None = None
    min_overlap: float | None = None


class ExampleFacts(Facts):
    """A contaminated test document: its id in the task, the method, and the span of its
    text (in that method's normal form) found in the training data."""

    doc_id: int
    method: str
    span: str
    overlap: float | None = None
    """The share of its n-grams found (character n-grams)."""
    training: str | None = None
    """Where in the training data (file:record), when the method knows (exact, substring)."""


class TaskContaminationFacts(Facts):
    task: str
    documents: int
    contaminated: dict[str, int] = Field(default_factory=dict)
    """Documents contaminated by each method (by ``MethodFacts.key``)."""
    any_method: int = 0
    share: float = 0.0
    """``any_method`` over ``documents``: the share the gate compares with max_share."""
    examples: list[ExampleFacts] = Field(default_factory=list)
    marked: bool = False
    """Above max_share with on_exceed: mark (the card marks the task's scores)."""


class SkippedTaskFacts(Facts):
    task: str
    reason: str


class ContaminationFacts(StageFacts):
    stage: ClassVar[str] = "contamination"

    training: list[str] = Field(default_factory=list)
    """The training data's sources, as the spec names them (relative paths, Hub ids)."""
    segments: int = 0
    characters: int = 0
    methods: list[MethodFacts] = Field(default_factory=list)
    tasks: list[TaskContaminationFacts] = Field(default_factory=list)
    skipped: list[SkippedTaskFacts] = Field(default_factory=list)
    """Tasks the release reports that lm-eval could not build here (offline)."""
    max_share: float | None = None
    on_exceed: str = "refuse"
    passed: bool = True
    failures: list[str] = Field(default_factory=list)
    index_hashes: int = 0
    """Distinct training n-grams held (8 bytes each), and runs written to disk past the cap."""
    index_spilled: int = 0

    @property
    def documents(self) -> int:
        return sum(task.documents for task in self.tasks)

    @property
    def contaminated_tasks(self) -> list[str]:
        return [task.task for task in self.tasks if task.marked]
