"""The model checks of the sanity eval: is the merged model the trained model, and does
it work?

1. merge equivalence: merged model vs base + adapter (PEFT), logits on probe prompts;
2. perplexity on held-out text: base, base + adapter, merged; an adapter that makes the
   model clearly worse than its base points at a wrong base or a broken run;
3. chat smoke test: greedy answers through the chat template, checked for sense.

The arithmetic of each check is in ``release.evaluate.sanity``; this module loads the
models, runs the checks in order and turns a failed one into a one-line error.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.core.quiet import held_stderr
from release.evaluate.facts import EquivalenceFacts, EvaluateFacts, PerplexityFacts, SmokeFacts
from release.spec.schema import ReleaseSpec


def _heldout_text(spec: ReleaseSpec) -> tuple[str, str]:
    if spec.eval.heldout_text:
        path = spec.eval.heldout_text
        return path.name, path.read_text(encoding="utf-8")
    text = resources.files("release").joinpath("data/heldout.txt").read_text("utf-8")
    return "model-release heldout.txt (multilingual sample)", text


def model_checks(
    spec: ReleaseSpec, base_dir: Path, adapter_dir: Path, merged_dir: Path, report: Reporter
) -> Generator[Event, None, EvaluateFacts]:
    """Merge equivalence, perplexity and the chat smoke test; returns their facts (the
    stage adds the gate's)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.evaluate.sanity import (
        PROBE_PROMPTS,
        SMOKE_PROMPTS,
        chat_smoke,
        merge_equivalence,
        perplexity,
        pick_device,
    )

    device = pick_device()
    remote = spec.base.trust_remote_code
    load = dict(dtype=torch.float32, trust_remote_code=remote)
    yield report.log(f"loading the base, the adapter and the merged model on {device}")
    with held_stderr():  # a bar per model, PEFT's and transformers' warnings
        tokenizer = AutoTokenizer.from_pretrained(merged_dir, trust_remote_code=remote)
        base = AutoModelForCausalLM.from_pretrained(base_dir, **load)
        with_adapter = PeftModel.from_pretrained(base, adapter_dir).to(device).eval()
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, **load).to(device).eval()

    steps = 4 + len(spec.eval.prompts or SMOKE_PROMPTS)
    yield report.progress(0, steps, "checks", "merge equivalence")
    equivalence = merge_equivalence(merged, with_adapter, tokenizer, PROBE_PROMPTS)
    equivalent = (
        equivalence.top1_agreement >= spec.eval.min_top1_agreement
        and equivalence.relative_error <= spec.eval.max_merge_error
    )
    equivalence_facts = EquivalenceFacts(
        **{key: round(value, 6) for key, value in asdict(equivalence).items()},
        relative_error=round(equivalence.relative_error, 6),
        min_top1_agreement=spec.eval.min_top1_agreement,
        max_relative_error=spec.eval.max_merge_error,
        passed=equivalent,
    )
    if equivalence.adapter_effect < 1e-4:
        yield report.log(
            "the adapter changes no logits on the probe prompts: was it trained?", "warning"
        )
    if not equivalent:
        raise WorkError(
            f"the merged model is not base + adapter: top-1 agreement "
            f"{equivalence.top1_agreement:.1%} (min {spec.eval.min_top1_agreement:.0%}), mean "
            f"logit error {equivalence.relative_error:.0%} of the adapter's effect (max "
            f"{spec.eval.max_merge_error:.0%})",
            hint="rerun with --force merge; if it persists, report it",
        )

    name, text = _heldout_text(spec)
    ids = tokenizer(text, return_tensors="pt").input_ids[0][:4096]
    ppl = {}
    yield report.progress(1, steps, "checks", "perplexity: base")
    with with_adapter.disable_adapter():
        ppl["base"] = perplexity(with_adapter, ids)
    yield report.progress(2, steps, "checks", "perplexity: base + adapter")
    ppl["adapter"] = perplexity(with_adapter, ids)
    yield report.progress(3, steps, "checks", "perplexity: merged")
    ppl["merged"] = perplexity(merged, ids)
    ratio = ppl["adapter"] / ppl["base"]
    perplexity_facts = PerplexityFacts(
        text=name,
        tokens=int(ids.numel()),
        **{key: round(value, 4) for key, value in ppl.items()},
        ratio=round(ratio, 4),
        max_ratio=spec.eval.max_perplexity_ratio,
        passed=ratio <= spec.eval.max_perplexity_ratio,
    )
    if not perplexity_facts.passed:
        raise WorkError(
            f"the adapter makes the base much worse on held-out text: perplexity "
            f"{ppl['base']:.2f} → {ppl['adapter']:.2f} (×{ratio:.2f}, limit "
            f"×{spec.eval.max_perplexity_ratio}); a sign of a wrong base or a broken run",
            hint="check base against the model the adapter was trained on",
        )

    del base, with_adapter
    smoke = []
    for index, prompt in enumerate(spec.eval.prompts or SMOKE_PROMPTS):
        yield report.progress(4 + index, steps, "checks", f"chat: {prompt[:40]}")
        with held_stderr():  # generate() warns of its settings
            result = chat_smoke(merged, tokenizer, prompt, max_new_tokens=spec.eval.max_new_tokens)
        smoke.append(SmokeFacts.model_validate(result.to_facts()))
        if not result.passed:
            raise WorkError(
                f"chat smoke test failed on {prompt!r}: {'; '.join(result.problems)} "
                f"(answer: {result.output[:80]!r})",
                hint="check the chat template and the tokenizer files of the merged model",
            )
    yield report.progress(steps, steps, "checks")
    return EvaluateFacts(
        device=str(device),
        equivalence=equivalence_facts,
        perplexity=perplexity_facts,
        smoke=smoke,
    )
