"""Stage: Push to the Hub.

Publishes the release: the model repo (merged weights, tokenizer, card, manifest), and
when the spec names them, a GGUF repo and an adapter repo. Each gets one commit holding
every file, then the tag ``v<version>`` (``release.hub.commit`` says how a rerun
completes a failed push and changes nothing after a good one).

Before anything is sent: the evaluation gate must have passed, every card must lint
without errors, and every file must match the sha256 the manifest recorded.

The Hub is ``huggingface_hub.HfApi`` at ``$HF_ENDPOINT`` (default https://huggingface.co)
with the token from ``$HF_TOKEN`` or the stored login; the token is never printed,
logged or written.

A dry run is not a run of this stage: ``dry_run(spec)`` builds the same plan and runs the
same local checks, and the runner records nothing, so a dry run can never be mistaken
for a push that happened.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release.core.errors import MissingInputError, WorkError, named_stage
from release.core.files import atomic_write_bytes
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import EvaluateFacts
from release.gguf.facts import GGUFFacts
from release.hub.facts import PushFacts
from release.hub.plan import Sources
from release.hub.settings import PushGate, PushSettings
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.card_facts import CardFacts
from release.report.notes import manifest_notes
from release.spec.schema import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun

if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd

    from release.hub.plan import PushPlan


SOURCES = Sources(
    merge=MergeFacts.stage, gguf=GGUFFacts.stage, adapter=AdapterFacts.stage, card=CardFacts.stage
)
"""Where the push finds what it publishes: the stages' folders."""


class PushStage(Stage):
    name = PushFacts.stage
    title = "Push to the Hub"
    depends_on = (MergeFacts.stage, EvaluateFacts.stage, GGUFFacts.stage, CardFacts.stage)

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        return None if spec.push.repo_id else "no push.repo_id in the spec"

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        """What ``run`` hands its domain (``PushSettings``)."""
        return PushSettings.of(spec).model_dump(mode="json")

    def tools(self, spec: ReleaseSpec) -> dict[str, str]:
        from huggingface_hub import __version__

        return {"huggingface_hub": __version__}

    def run(self, ctx: StageContext) -> StageRun:
        from release.hub.api import hub_api
        from release.hub.commit import push_repo
        from release.hub.plan import build_plan

        settings = PushSettings.of(ctx.spec)  # what the key holds: the push reads only it
        notes = manifest_notes(ctx.manifest, ctx.workspace, settings.eval)
        plan = build_plan(settings, ctx.manifest, ctx.workspace, ctx.out_dir, SOURCES, notes=notes)
        warnings, additions = _preflight(settings, ctx.manifest, plan)
        for warning in warnings:
            yield ctx.log(warning, "warning")
        api = hub_api()
        results = []
        for done, (repo, operations) in enumerate(zip(plan.repos, additions, strict=True)):
            yield ctx.progress(done, len(plan.repos), "repos", repo.repo_id)
            result = yield from push_repo(api, ctx, repo, operations)
            results.append(result)
        yield ctx.progress(len(plan.repos), len(plan.repos), "repos")
        return StageOutput(facts=PushFacts(repos=results))


def _preflight(
    settings: PushSettings, manifest: Manifest, plan: PushPlan
) -> tuple[list[str], list[dict[str, CommitOperationAdd]]]:
    """The local checks, in order; writes the files the push generates. Returns
    warnings and, per repo, the checked upload operations."""
    from release.hub.checks import lint_cards, prepare_additions

    warnings = [warning] if (warning := _check_gate(settings.eval, manifest)) else []
    warnings += lint_cards(plan)
    for path, content in plan.generated:
        atomic_write_bytes(path, content)
    additions = [prepare_additions(repo) for repo in plan.repos]
    return warnings, additions


def _check_gate(gate: PushGate, manifest: Manifest) -> str | None:
    """Refuse unless the evaluation gate passed; returns a warning when eval is off."""
    if not gate.enabled:
        return "eval.enabled is false: pushing a release no evaluation gate has checked"
    evaluated = EvaluateFacts.of(manifest)
    if evaluated is None or evaluated.gate is None:
        raise WorkError(
            "the evaluate stage recorded no gate result",
            hint="run `model-release run` so the evaluate stage runs first",
        )
    if not evaluated.gate.passed:
        raise WorkError(
            "the evaluation gate failed: this release is not pushed",
            hint="see the evaluate stage's report (manifest.json, stages.evaluate.facts.gate)",
        )
    return None


def dry_run(spec: ReleaseSpec) -> tuple[PushPlan, list[str]]:
    """What a push of ``spec``'s built release would do, checked but not sent.

    Runs every check the push runs before uploading (gate, card lint, hashes) and
    returns the plan with the warnings. Needs no network and no token; writes nothing
    in the workspace. Show it with ``release.hub.plan.render_plan``.
    """
    from release.hub.plan import build_plan

    manifest_path = spec.workspace / MANIFEST_NAME
    if not manifest_path.is_file():
        raise MissingInputError(
            f"{manifest_path}: no release has been built in this workspace",
            hint="run `model-release run` first",
        )
    manifest = Manifest.load(manifest_path)
    settings = PushSettings.of(spec)
    with tempfile.TemporaryDirectory(prefix="model-release-push-") as scratch:
        notes = manifest_notes(manifest, spec.workspace, settings.eval)
        plan = build_plan(settings, manifest, spec.workspace, Path(scratch), SOURCES, notes=notes)
        with named_stage(PushStage.name):
            warnings, _ = _preflight(settings, manifest, plan)
    return plan, warnings
