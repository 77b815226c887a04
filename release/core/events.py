"""Progress events: what the runner tells a front end. Plain data, no UI imports.

The runner yields these; the CLI renders them with rich, the wizard with Textual, and
the GitHub Action summary reads the finished ones. A stage reports work as ``Progress``
with a unit ("bytes", "tensors", "prompts", "steps") so a front end can show a bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class StageStarted:
    stage: str
    title: str


@dataclass(frozen=True)
class Progress:
    stage: str
    done: float
    total: float | None
    unit: str = "items"
    message: str = ""


@dataclass(frozen=True)
class Log:
    stage: str
    message: str
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True)
class StageSkipped:
    stage: str
    reason: str


@dataclass(frozen=True)
class StageFinished:
    stage: str
    seconds: float
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StageFailed:
    stage: str
    error: BaseException


Event = StageStarted | Progress | Log | StageSkipped | StageFinished | StageFailed


class Reporter(Protocol):
    """What domain code (hub/, gguf/, the preflight) needs of the stage that runs it: a way
    to say what it does, and a cancel check. A ``StageContext`` is one; through it the
    domain sees neither the spec nor the workspace, only what it is handed."""

    stage: str

    def log(self, message: str, level: Literal["info", "warning"] = "info") -> Log: ...

    def progress(
        self, done: float, total: float | None, unit: str, message: str = ""
    ) -> Progress: ...

    def check_cancelled(self) -> None: ...
