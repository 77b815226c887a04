"""Stage: Sanity eval and the release gate.

Before anything is published, prove the merged model is the trained model and works:
the regression gate first (``release.evaluate.gate``: it needs no model), then the model
checks (``release.evaluate.checks``: merge equivalence, perplexity, chat smoke test).
Each check records its numbers in the manifest; a failed check fails the stage with the
numbers in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release.spec.schema import ReleaseSpec
from release.stages.adapter import AdapterStage
from release.stages.base import Stage, StageContext, StageOutput, StageRun
from release.stages.merge import MergeStage


class EvaluateStage(Stage):
    name = "evaluate"
    title = "Sanity eval"
    depends_on = (AdapterStage.name, MergeStage.name)

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        return None if spec.eval.enabled else "eval.enabled is false"

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        return spec.eval.model_dump(mode="json")

    def input_paths(self, spec: ReleaseSpec) -> list[Path]:
        extra = [spec.eval.heldout_text] if spec.eval.heldout_text else []
        return [*extra, *spec.eval.results, *spec.eval.previous]

    def tools(self) -> dict[str, str]:
        from importlib.metadata import version

        return {name: version(name) for name in ("torch", "transformers", "peft")}

    def run(self, ctx: StageContext) -> StageRun:
        from release.checkpoint.base import resolve_base_dir
        from release.evaluate.checks import model_checks
        from release.evaluate.gate import gate_stored_results
        from release.evaluate.needs import evaluate_needs
        from release.evaluate.sanity import pick_device
        from release.preflight import check

        spec = ctx.spec
        results, gate = gate_stored_results(spec.eval, spec.base_dir)  # needs no model
        base_dir = resolve_base_dir(spec.base, ctx.facts(AdapterStage.name).get("base_commit"))
        adapter_dir, merged_dir = ctx.stage_dir(AdapterStage.name), ctx.stage_dir(MergeStage.name)
        on_accelerator = pick_device().type != "cpu"
        needs = evaluate_needs(base_dir, merged_dir, adapter_dir, on_accelerator=on_accelerator)
        facts, measured = yield from check(ctx, ctx.workspace, needs)
        facts["results"], facts["gate"] = results, gate
        facts |= yield from model_checks(spec, base_dir, adapter_dir, merged_dir, ctx)
        return StageOutput(facts=facts, measured=measured)
