"""What the GGUF stage's checks cost next to its export, measured as it runs.

The checks (the merged model's reference logits, the read-back, llama.cpp's load of each
file, its sha256) are there to prove the export; the stage log and the manifest's
``measured`` say what they cost against the export itself, so a check that grows out of
proportion shows. Most of the checks' work runs in child processes beside the export
(``reference_process``, ``verify``): "checks" is the time the stage waited for them. On a
machine with few free cores that work also slows the export down, so the sum of the two
is the figure to compare across versions (bench/gguf.py prints the stage's wall).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from release.gguf.facts import GGUFFacts

Part = Literal["export", "checks"]


@dataclass(frozen=True)
class GGUFBuild:
    """What the GGUF stage made: its facts, and the seconds it spent writing the files
    and checking them (measured, so never part of a key)."""

    facts: GGUFFacts
    export_seconds: float
    check_seconds: float


@dataclass
class StageClock:
    """Wall seconds per part of the stage. A block that yields events counts the time
    its front end took to show them too (milliseconds)."""

    seconds: dict[str, float] = field(default_factory=lambda: {"export": 0.0, "checks": 0.0})

    @contextlib.contextmanager
    def counting(self, part: Part) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - started

    def rounded(self, part: Part) -> float:
        return round(self.seconds[part], 3)

    def summary(self, files: int) -> str:
        """The stage log's last line: "3 files: export 20.1 s, checks 9.8 s (0.5x the export)"."""
        export, checks = self.seconds["export"], self.seconds["checks"]
        ratio = f" ({checks / export:.1f}x the export)" if export else ""
        plural = "s" if files != 1 else ""
        return f"{files} file{plural}: export {export:.1f} s, checks {checks:.1f} s{ratio}"
