"""What a stage is, and what it gets to work with.

A stage is a function of its inputs: the part of the spec it reads (``settings``), the
external files it reads (``input_paths``, each by its content or by the part of it the
stage reads, ``read_in_part``) and the outputs of the stages it depends on.
The runner hashes those three into a key; when the manifest already holds a finished
stage with the same key and its outputs are intact, the stage is skipped.

``run`` is a generator: it yields progress events while it works and *returns* a
``StageOutput``. It writes only below ``ctx.out_dir`` (a staging folder the runner
renames to its final name on success), so an interrupted stage leaves nothing that
looks complete.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from release.core.errors import Cancelled
from release.core.events import Event, Log, Progress
from release.core.facts import StageFacts
from release.core.manifest import Manifest
from release.spec.schema import ReleaseSpec


@dataclass
class StageOutput:
    facts: StageFacts
    """What the stage measured of its inputs and outputs (a record its readers name)."""
    measured: dict[str, Any] = field(default_factory=dict)
    """What this run measured of the machine (peak memory, free disk): recorded, but
    never part of a later stage's key, since a rerun on the same inputs measures anew."""
    hashed: dict[str, str] = field(default_factory=dict)
    """sha256 of output files the stage hashed while writing them, by path relative to
    its folder: the runner records them without reading the files again."""


@dataclass
class StageContext:
    spec: ReleaseSpec
    manifest: Manifest
    workspace: Path
    out_dir: Path
    stage: str
    cancel: threading.Event = field(default_factory=threading.Event)

    def stage_dir(self, name: str) -> Path:
        """The final folder of an earlier stage's outputs."""
        return self.workspace / name

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"{self.stage}: cancelled")

    def progress(self, done: float, total: float | None, unit: str, message: str = "") -> Progress:
        self.check_cancelled()
        return Progress(self.stage, done, total, unit, message)

    def log(self, message: str, level: str = "info") -> Log:
        return Log(self.stage, message, level)  # type: ignore[arg-type]


StageRun = Generator[Event, None, StageOutput]


class Stage(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    upstream_part: ClassVar[dict[str, str]] = {}
    """Of a stage in ``depends_on`` named here, the one part this stage reads: that
    stage's fact of this name, a record that says what the part is of (the evaluate
    stage's reference: which merged model, which probe, which dtype). The key holds that
    record alone, so the rest of that stage changing (its scores) leaves this one done,
    and so do bytes that differ in their last bits from run to run (a float32 forward
    pass of the same model on the same CPU did)."""

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        """Why this stage does not apply to ``spec`` (None: it applies)."""
        return None

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        """The part of the spec this stage's result depends on."""
        return {}

    def input_paths(self, spec: ReleaseSpec) -> list[Path]:
        """External files this stage reads (earlier stages' outputs are added for it)."""
        return []

    def read_in_part(self, spec: ReleaseSpec, file: Path) -> str | None:
        """A digest of the part of ``file`` (one of ``input_paths``' files) this stage
        reads, when it reads only part of it: the key holds that digest instead of the
        file's sha256, so a stage that reads a GB file's header does not hash the GB.
        None (the default): the stage reads all of it, and is keyed by its content."""
        return None

    def notes_when_kept(self, spec: ReleaseSpec, manifest: Manifest) -> list[str]:
        """Warnings for a rerun that keeps this stage's recorded result as it is."""
        return []

    def tools(self, spec: ReleaseSpec) -> dict[str, str]:
        """Versions of the libraries whose behaviour shapes this stage's outputs for
        ``spec``."""
        return {}

    @abstractmethod
    def run(self, ctx: StageContext) -> StageRun: ...
