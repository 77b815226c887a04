"""The wizard's steps: one per stage of the runner, with the label shown in the sidebar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from release.manifest import Manifest
from release.spec import ReleaseSpec
from release.stages import default_stages

State = Literal["pending", "running", "done", "failed", "skipped"]


@dataclass(frozen=True)
class Step:
    stage: str
    label: str


STEPS = (
    Step("adapter", "Intake"),
    Step("merge", "Merge"),
    Step("evaluate", "Eval"),
    Step("gguf", "GGUF"),
    Step("card", "Card"),
    Step("push", "Push"),
)
STAGES = tuple(step.stage for step in STEPS)


def initial_states(spec: ReleaseSpec | None, manifest: Manifest | None) -> dict[str, State]:
    """Each step's state as the spec and the manifest leave it, before anything runs."""
    states: dict[str, State] = {}
    for stage in default_stages():
        if spec is not None and stage.skip_reason(spec):
            states[stage.name] = "skipped"
        elif manifest is not None and stage.name in manifest.stages:
            states[stage.name] = "done"
        else:
            states[stage.name] = "pending"
    return states


def skip_reasons(spec: ReleaseSpec | None) -> dict[str, str]:
    if spec is None:
        return {}
    return {s.name: reason for s in default_stages() if (reason := s.skip_reason(spec))}


def resume_step(states: dict[str, State]) -> str:
    """The first step still to do; the push when everything else is done."""
    return next((s for s in STAGES if states.get(s) not in ("done", "skipped")), STAGES[-1])


def stages_through(stage: str) -> list[str]:
    """The stages a run of ``stage`` includes: it and every stage before it."""
    return list(STAGES[: STAGES.index(stage) + 1])
