"""The wizard's steps: one per stage of the runner, in its order, with the label shown in
the sidebar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from release.evaluate.facts import EvaluateFacts
from release.gguf.facts import GGUFFacts
from release.hub.facts import PushFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.card_facts import CardFacts
from release.runner import stage_states, stale_reasons
from release.spec.schema import ReleaseSpec
from release.stages import default_stages

State = Literal["pending", "running", "done", "stale", "failed", "skipped"]
"""``stale``: done once, but its inputs changed since, so a run would do it again."""


@dataclass(frozen=True)
class Step:
    stage: str
    label: str


_LABELS = {
    AdapterFacts.stage: "Intake",
    MergeFacts.stage: "Merge",
    EvaluateFacts.stage: "Eval",
    GGUFFacts.stage: "GGUF",
    CardFacts.stage: "Card",
    PushFacts.stage: "Push",
}
"""The steps' sidebar names. A stage without one has no step (and no pane) of its own:
it runs with the step after it (``stages_through``), as the contamination check runs with
the eval step."""

STEPS = tuple(
    Step(stage.name, _LABELS[stage.name]) for stage in default_stages() if stage.name in _LABELS
)
"""In the runner's order (``release.stages.default_stages``), the one list of stages."""
STAGES = tuple(step.stage for step in STEPS)


def initial_states(spec: ReleaseSpec | None) -> dict[str, State]:
    """Each step's state as a run started now would find it (``stage_states``)."""
    if spec is None:
        return dict.fromkeys(STAGES, "pending")
    return dict(stage_states(spec))


def why_stale(spec: ReleaseSpec | None, states: dict[str, State]) -> dict[str, list[str]]:
    """Why each stale step would run again: the setting (old -> new), input file, output
    or step before it that changed (``release.runner.stale_reasons``)."""
    if spec is None or "stale" not in states.values():
        return {}
    from release.core.manifest import MANIFEST_NAME, Manifest

    manifest = Manifest.load_or_new(
        spec.workspace / MANIFEST_NAME, name=spec.name, version=spec.version
    )
    runner_states = {name: state for name, state in states.items() if state != "running"}
    return {
        stage.name: stale_reasons(stage, spec, manifest, runner_states)  # type: ignore[arg-type]
        for stage in default_stages()
        if states.get(stage.name) == "stale" and stage.name in _LABELS
    }


def skip_reasons(spec: ReleaseSpec | None) -> dict[str, str]:
    if spec is None:
        return {}
    return {s.name: reason for s in default_stages() if (reason := s.skip_reason(spec))}


def resume_step(states: dict[str, State]) -> str:
    """The first step still to do; the push when everything else is done."""
    return next((s for s in STAGES if states.get(s) not in ("done", "skipped")), STAGES[-1])


def stages_through(stage: str) -> list[str]:
    """The stages a run of ``stage`` includes: it and every stage before it, the runner's
    stages without a step of their own (the contamination check) among them."""
    names = [s.name for s in default_stages()]
    return names[: names.index(stage) + 1]
