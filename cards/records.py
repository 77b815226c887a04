"""One stored score as a record, below every reader and writer of results files.

``cards.lmeval`` and ``cards.simple_results`` read files into ``EvalRecord``s;
``cards.evals`` merges them and writes them out as model-index and ``.eval_results``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field

from cards.errors import CardError

# lm-eval tasks are scored on generated or ranked text; the Hub files them under this tag.
TASK_TYPE = "text-generation"
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
    filter: str = "none"
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

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task, self.metric, self.filter)


def read_text(path: Path) -> str:
    """A results file's text, or a one-line ``CardError``."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise CardError(f"{path}: cannot read results file ({error.strerror})") from error
