"""Stage: Sanity eval and the release gate.

Before anything is published, prove the merged model is the trained model and works:
the regression gate first (``release.evaluate.gate``: it needs no model), then the model
checks (``release.evaluate.checks``: merge equivalence, perplexity, chat smoke test), then
eval.tasks' benchmarks (``release.evaluate.harness``) and the gate again on their scores.
Each check records its numbers in the manifest; a failed check fails the stage with the
numbers in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release.evaluate.facts import EvaluateFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.spec.schema import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class EvaluateStage(Stage):
    name = EvaluateFacts.stage
    title = "Sanity eval"
    depends_on = (AdapterFacts.stage, MergeFacts.stage)

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        return None if spec.eval.enabled else "eval.enabled is false"

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        """What ``run`` hands its domain (``EvaluateSettings``), and what the gate reads
        of the last release."""
        from release.evaluate.gate import previous_scores
        from release.evaluate.settings import EvaluateSettings
        from release.reference import probe

        scores = previous_scores(spec.eval.previous)  # not the manifests' bytes
        settings = EvaluateSettings.of(spec).model_dump(mode="json")
        # the merged model's reference for the GGUF checks is kept on this probe
        kept = {"reference_probe": probe.PROBE.digest}
        return settings | {"previous_scores": scores} | kept

    def input_paths(self, spec: ReleaseSpec) -> list[Path]:
        from release.evaluate.history import is_manifest

        extra = [spec.eval.heldout_text] if spec.eval.heldout_text else []
        if spec.eval.tasks is not None and spec.eval.tasks.folder is not None:
            extra.append(spec.eval.tasks.folder)
        files = [path for path in spec.eval.previous if not is_manifest(path)]
        if spec.merge.recipe is not None:  # the inputs the merged model is measured beside
            from release.merge.recipe_inputs import local_paths

            extra += local_paths(spec.merge.recipe, spec.base_dir or Path.cwd())
        return [*extra, *spec.eval.results, *files]

    def tools(self, spec: ReleaseSpec) -> dict[str, str]:
        from importlib.metadata import version
        from importlib.util import find_spec

        names = ["torch", "transformers", "peft", "accelerate"]
        names += ["lm_eval"] if find_spec("lm_eval") is not None else []
        return {name: version(name) for name in names}

    def run(self, ctx: StageContext) -> StageRun:
        from release.checkpoint.base import resolve_base_dir
        from release.evaluate.checks import model_checks
        from release.evaluate.gate import gate_stored_results
        from release.evaluate.loading import visible_gpus
        from release.evaluate.needs import choose_plan
        from release.evaluate.settings import EvaluateSettings
        from release.preflight import available_memory, check

        spec = ctx.spec
        settings = EvaluateSettings.of(spec)  # what the key holds: the checks read only it
        gated = gate_stored_results(settings.eval, spec.base_dir, ctx.workspace)  # no model
        intake = AdapterFacts.of(ctx.manifest)
        adapter_dir = ctx.stage_dir(AdapterFacts.stage)
        commit = intake.base_commit if intake else None
        base_dir = resolve_base_dir(spec.base, commit, adapter_dir)
        merged_dir = ctx.stage_dir(MergeFacts.stage)
        lora_dir = adapter_dir if settings.recipe is None else None  # a recipe: its inputs
        plan, needs = choose_plan(
            base_dir, merged_dir, lora_dir, visible_gpus(), available_memory()[0]
        )
        estimates, measured = yield from check(ctx, ctx.workspace, needs)
        fingerprint = intake.base_fingerprint if intake else None  # keys the base's figures
        models, beside = [], {}  # a recipe's models, and those the harness runs too
        if settings.recipe is not None:  # the merged model beside each of its inputs
            from release.evaluate.recipe_checks import (
                harness_models,
                recipe_checks,
                recipe_models,
            )
            from release.merge.recipe_inputs import BaseIdentity

            identity = BaseIdentity(base_dir, spec.base.repo_id, spec.base.path)
            root = spec.base_dir or Path.cwd()
            models = recipe_models(settings, identity, root, commit or spec.base.revision)
            beside = harness_models(models)
            checks = recipe_checks(
                settings,
                models,
                merged_dir,
                plan,
                ctx,
                base_fingerprint=fingerprint,
                keep_reference=_reference_target(ctx),
            )
        else:
            checks = model_checks(
                settings,
                base_dir,
                adapter_dir,
                merged_dir,
                plan,
                ctx,
                base_fingerprint=fingerprint,
                keep_reference=_reference_target(ctx),
            )
        checked = yield from checks
        harness, base_results = None, []
        if settings.eval.tasks is not None:
            from release.evaluate.harness import run_tasks
            from release.evaluate.scores import read_scores

            tasks, gate = settings.eval.tasks, settings.eval.gate
            if models and gate is not None and gate.no_worse_than == models[0].ref:
                tasks = tasks.model_copy(update={"compare_base": True})  # the gate's input
            ran = yield from run_tasks(
                tasks,
                merged_dir,
                base_dir,
                plan,
                ctx.out_dir,
                ctx,
                trust_remote_code=settings.trust_remote_code,
                inputs=list(beside.values()),
            )
            final = ctx.stage_dir(self.name)  # where the runner moves ctx.out_dir

            def scores(files: list[Path]):
                moved = {path: final / path.relative_to(ctx.out_dir) for path in files}
                return read_scores(files, spec.base_dir, moved)

            produced = scores(ran.produced)
            harness = ran.facts.model_copy(update={"results": produced})
            gated = gate_stored_results(settings.eval, spec.base_dir, ctx.workspace, produced)
            base_results = scores(ran.base_produced)
            if checked.merge_inputs is not None:  # each input's scores beside its perplexity
                from release.evaluate.recipe_checks import with_task_scores

                by_ref = {ref: scores(ran.inputs_produced[m.folder]) for ref, m in beside.items()}
                by_ref[models[0].ref] = base_results
                inputs = with_task_scores(checked.merge_inputs, models, by_ref, produced, gate)
                checked = checked.model_copy(update={"merge_inputs": inputs})
        stored = {"results": gated.results, "gate": gated.gate, "previous": gated.previous}
        ran_facts = {"harness": harness, "base_results": base_results}
        facts = checked.model_copy(update={**stored, **ran_facts, **estimates})
        return StageOutput(facts=facts, measured=measured)


def _reference_target(ctx: StageContext):
    """Where the stage keeps the merged model's reference, and which merged model it is."""
    from release.reference.facts import model_identity
    from release.reference.heldout import heldout_text
    from release.reference.record import ReferenceTarget

    merge = ctx.manifest.stages.get(MergeFacts.stage)
    identity = model_identity(merge.outputs) if merge else None
    return ReferenceTarget(ctx.out_dir, identity, heldout_text(ctx.spec.eval.heldout_text))
