"""Stage: Sanity eval and the release gate.

Before anything is published, prove the merged model is the trained model and works:

1. merge equivalence: merged model vs base + adapter (PEFT), logits on probe prompts;
2. perplexity on held-out text: base, base + adapter, merged; an adapter that makes the
   model clearly worse than its base points at a wrong base or a broken run;
3. chat smoke test: greedy answers through the chat template, checked for sense;
4. regression gate: stored eval scores of this release vs the last release's
   (``release.gate``).

Each check records its numbers in the manifest; a failed check fails the stage with the
numbers in the message. The gate is checked first: it needs no model.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from release.errors import StageError
from release.spec import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class EvaluateStage(Stage):
    name = "evaluate"
    title = "Sanity eval"
    depends_on = ("adapter", "merge")

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
        from release.base_model import resolve_base_dir
        from release.preflight import check, evaluate_needs

        results, gate = _gate(ctx)  # first: a collapsed release fails without a model
        from release.sanity import pick_device

        needs = evaluate_needs(
            resolve_base_dir(ctx.spec.base),
            ctx.stage_dir("merge"),
            ctx.stage_dir("adapter"),
            on_accelerator=pick_device().type != "cpu",
        )
        facts, measured = yield from check(ctx, needs)
        facts["results"], facts["gate"] = results, gate
        yield from _model_checks(ctx, facts)
        return StageOutput(facts=facts, measured=measured)


def _gate(ctx: StageContext) -> tuple[list[dict], dict]:
    from cards.evals import load_results
    from release.gate import compare, previous_records, records_to_facts, worst_first
    from release.paths import relative_if_inside

    spec = ctx.spec.eval
    current = [  # sources as the spec names them: the facts must not hold where it lies
        record.model_copy(update={"source": relative_if_inside(record.source, ctx.spec.base_dir)})
        for record in load_results(spec.results)
    ]
    previous = previous_records(spec.previous)
    verdict = compare(
        current,
        previous,
        max_task_drop=spec.max_task_drop,
        max_average_drop=spec.max_average_drop,
    )
    if not verdict.passed:
        worst = "; ".join(dict.fromkeys([*verdict.failures, *worst_first(verdict)]))
        raise StageError(
            "evaluate",
            f"regression gate failed against the last release: {worst}",
            hint="find out what broke (a wrong base? another eval setup?) before releasing",
        )
    return records_to_facts(current), verdict.to_facts()


def _heldout_text(spec: ReleaseSpec) -> tuple[str, str]:
    if spec.eval.heldout_text:
        path = spec.eval.heldout_text
        return path.name, path.read_text(encoding="utf-8")
    text = resources.files("release").joinpath("data/heldout.txt").read_text("utf-8")
    return "model-release heldout.txt (multilingual sample)", text


def _model_checks(ctx: StageContext, facts: dict[str, Any]) -> StageRun:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.base_model import resolve_base_dir
    from release.sanity import (
        PROBE_PROMPTS,
        SMOKE_PROMPTS,
        chat_smoke,
        merge_equivalence,
        perplexity,
        pick_device,
    )

    spec = ctx.spec
    device = pick_device()
    merged_dir = ctx.stage_dir("merge")
    remote = spec.base.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(merged_dir, trust_remote_code=remote)
    load = dict(dtype=torch.float32, trust_remote_code=remote)
    yield ctx.log(f"loading the base, the adapter and the merged model on {device}")
    base = AutoModelForCausalLM.from_pretrained(resolve_base_dir(spec.base), **load)
    with_adapter = PeftModel.from_pretrained(base, ctx.stage_dir("adapter")).to(device).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, **load).to(device).eval()
    facts["device"] = str(device)

    steps = 4 + len(spec.eval.prompts or SMOKE_PROMPTS)
    yield ctx.progress(0, steps, "checks", "merge equivalence")
    equivalence = merge_equivalence(merged, with_adapter, tokenizer, PROBE_PROMPTS)
    facts["equivalence"] = {
        **{key: round(value, 6) for key, value in asdict(equivalence).items()},
        "relative_error": round(equivalence.relative_error, 6),
        "min_top1_agreement": spec.eval.min_top1_agreement,
        "max_relative_error": spec.eval.max_merge_error,
    }
    if equivalence.adapter_effect < 1e-4:
        yield ctx.log(
            "the adapter changes no logits on the probe prompts: was it trained?", "warning"
        )
    if (
        equivalence.top1_agreement < spec.eval.min_top1_agreement
        or equivalence.relative_error > spec.eval.max_merge_error
    ):
        raise StageError(
            "evaluate",
            f"the merged model is not base + adapter: top-1 agreement "
            f"{equivalence.top1_agreement:.1%} (min {spec.eval.min_top1_agreement:.0%}), mean "
            f"logit error {equivalence.relative_error:.0%} of the adapter's effect (max "
            f"{spec.eval.max_merge_error:.0%})",
            hint="rerun with --force merge; if it persists, report it",
        )

    name, text = _heldout_text(spec)
    ids = tokenizer(text, return_tensors="pt").input_ids[0][:4096]
    ppl = {}
    yield ctx.progress(1, steps, "checks", "perplexity: base")
    with with_adapter.disable_adapter():
        ppl["base"] = perplexity(with_adapter, ids)
    yield ctx.progress(2, steps, "checks", "perplexity: base + adapter")
    ppl["adapter"] = perplexity(with_adapter, ids)
    yield ctx.progress(3, steps, "checks", "perplexity: merged")
    ppl["merged"] = perplexity(merged, ids)
    ratio = ppl["adapter"] / ppl["base"]
    facts["perplexity"] = {
        "text": name,
        "tokens": int(ids.numel()),
        **{key: round(value, 4) for key, value in ppl.items()},
        "ratio": round(ratio, 4),
        "max_ratio": spec.eval.max_perplexity_ratio,
    }
    if ratio > spec.eval.max_perplexity_ratio:
        raise StageError(
            "evaluate",
            f"the adapter makes the base much worse on held-out text: perplexity "
            f"{ppl['base']:.2f} → {ppl['adapter']:.2f} (×{ratio:.2f}, limit "
            f"×{spec.eval.max_perplexity_ratio}); a sign of a wrong base or a broken run",
            hint="check base against the model the adapter was trained on",
        )

    del base, with_adapter
    smoke = []
    for index, prompt in enumerate(spec.eval.prompts or SMOKE_PROMPTS):
        yield ctx.progress(4 + index, steps, "checks", f"chat: {prompt[:40]}")
        result = chat_smoke(merged, tokenizer, prompt, max_new_tokens=spec.eval.max_new_tokens)
        smoke.append(result.to_facts())
        if not result.passed:
            raise StageError(
                "evaluate",
                f"chat smoke test failed on {prompt!r}: {'; '.join(result.problems)} "
                f"(answer: {result.output[:80]!r})",
                hint="check the chat template and the tokenizer files of the merged model",
            )
    facts["smoke"] = smoke
    yield ctx.progress(steps, steps, "checks")
