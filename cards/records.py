"""One stored score as a record, below every reader and writer of results files.

``cards.lmeval`` and ``cards.simple_results`` read files into ``EvalRecord``s;
``cards.evals`` merges them and writes them out as model-index and ``.eval_results``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from cards import vocab, yamlio
from cards.errors import CardError
from cards.schema import is_repo_id

# lm-eval tasks are scored on generated or ranked text; the Hub files them under this tag.
TASK_TYPE = "text-generation"
DEFAULT_FILTER = "none"
"""lm-eval's filter when a task names none: left out of every label and file name."""
Finite = Annotated[float, AllowInfNan(False)]


class EvalRecord(BaseModel):
    """One score. ``key`` is what merging and comparing match on; ``n_shot`` is kept
    apart so a comparison can flag numbers measured with different shots."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    value: Finite
    stderr: Finite | None = None
    n_shot: int | None = Field(default=None, ge=0)
    filter: str = DEFAULT_FILTER
    task_version: str | None = None
    harness: str = Field(min_length=1)
    harness_version: str | None = None
    model: str | None = None
    model_revision: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    split: str | None = None
    higher_is_better: bool | None = None
    date: datetime | None = None
    source: str = Field(min_length=1)
    group: str | None = None
    """The task group this task was run in (lm-eval ``group_subtasks``), if any."""
    subtasks: tuple[str, ...] = ()
    """For a group's aggregate score: the tasks it aggregates. Empty for a task."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task, self.metric, self.filter)

    @property
    def is_group(self) -> bool:
        return bool(self.subtasks)

    @property
    def named_filter(self) -> str | None:
        """The filter, when it is not lm-eval's default (which no label names)."""
        return None if self.filter == DEFAULT_FILTER else self.filter

    @property
    def metric_label(self) -> str:
        return metric_label(self.metric, self.filter)

    @property
    def label(self) -> str:
        return score_label(self.task, self.metric, self.filter)

    @field_validator("task", "metric", "filter")
    @classmethod
    def _one_table_cell(cls, value: str) -> str:
        """A name the card shows in a table cell: a ``|`` or a line break would split it."""
        if "|" in value or any(c in value for c in "\r\n"):
            raise ValueError(f"{value!r} holds '|' or a line break; a card's table cannot show it")
        return value

    @field_validator("dataset")
    @classmethod
    def _hub_dataset_only(cls, value: str | None) -> str | None:
        """Only a Hub dataset id is kept: ``json`` or a local path names no dataset
        anyone else can find, and the Hub would group every such task under it."""
        return value if value and is_hub_dataset_id(value) else None


def metric_label(metric: str, filter_: str = DEFAULT_FILTER) -> str:
    """A metric as every table and line names it: lm-eval's default filter ``none`` is
    left out, any other is named, so the strict and flexible scores of one task read apart."""
    return metric if filter_ == DEFAULT_FILTER else f"{metric} ({filter_})"


def score_label(task: str, metric: str, filter_: str = DEFAULT_FILTER) -> str:
    """A score as the gate's lines, the history and the notes name it."""
    return f"{task} {metric_label(metric, filter_)}"


def is_hub_dataset_id(value: str) -> bool:
    """Whether a harness's dataset path names a Hub dataset: ``owner/name``, or one of the
    canonical ids without an owner; never a builder name (``json``, ``csv``...) or a path."""
    if value in vocab.dataset_builders() or value.startswith((".", "/", "~")):
        return False
    return is_repo_id(value, owner_required=True) or value in vocab.canonical_datasets()


def read_text(path: Path) -> str:
    """A results file's text, or a one-line ``CardError``."""
    try:
        return yamlio.read_bounded(path)
    except OSError as error:
        raise CardError(f"{path}: cannot read results file ({error.strerror})") from error


def scores_as_json(records: list[EvalRecord]) -> list[dict]:
    """Scores as a manifest (and a stage's key) holds them."""
    return [record.model_dump(mode="json", exclude_none=True) for record in records]


Scores = Annotated[list[EvalRecord], PlainSerializer(scores_as_json, when_used="json")]
"""Scores as a manifest stores them: typed records, written without their empty fields."""
