"""The model checks of the sanity eval: is the merged model the trained model, and does
it work?

1. merge equivalence: merged model vs PEFT's merge of base + adapter stored alike, logits
   on probe prompts, against the adapter's effect;
2. perplexity on held-out text: base, base + adapter, merged; an adapter that makes the
   model clearly worse than its base points at a wrong base or a broken run;
3. chat smoke test: greedy answers through the chat template, checked for sense;
4. the merged model's reference for the GGUF checks, kept where the stage says
   (``release.reference``), so no later stage loads the model again.

One model is resident at a time: base + adapter first, for what the checks need of it
(probe logits, the adapter's effect, two perplexities); then it is freed and the merged
model loads to be compared. The peak is one model, not two (``release.evaluate.needs``).
The arithmetic of each check is in ``release.evaluate.sanity``; dtype and placement in
``release.evaluate.loading``; this module runs the checks in order and turns a failed
one into a one-line error.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.core.quiet import held_stderr
from release.evaluate.facts import EquivalenceFacts, EvaluateFacts, PerplexityFacts, SmokeFacts
from release.evaluate.loading import (
    LoadPlan,
    checkpoint_dtype,
    load_model,
    release_memory,
    steady_heap,
)
from release.reference.record import ReferenceTarget
from release.spec.schema import ReleaseSpec

if TYPE_CHECKING:
    import torch

    from release.evaluate.sanity import ProbeReference


def _heldout_text(spec: ReleaseSpec) -> tuple[str, str]:
    if spec.eval.heldout_text:
        path = spec.eval.heldout_text
        return path.name, path.read_text(encoding="utf-8")
    text = resources.files("release").joinpath("data/heldout.txt").read_text("utf-8")
    return "model-release heldout.txt (multilingual sample)", text


@dataclass(frozen=True)
class _BaseSide:
    """What the checks keep of base + adapter after it is freed."""

    reference: ProbeReference
    base_perplexity: float
    adapter_perplexity: float


def model_checks(
    spec: ReleaseSpec,
    base_dir: Path,
    adapter_dir: Path,
    merged_dir: Path,
    plan: LoadPlan,
    report: Reporter,
    keep_reference: ReferenceTarget | None = None,
) -> Generator[Event, None, EvaluateFacts]:
    """Merge equivalence, perplexity and the chat smoke test; returns their facts (the
    stage adds the gate's). With ``keep_reference``, the merged model's reference too."""
    from transformers import AutoTokenizer

    from release.evaluate.sanity import HELDOUT_TOKENS, SMOKE_PROMPTS

    remote = spec.base.trust_remote_code
    steady_heap()
    with held_stderr():  # transformers' and PEFT's bars and warnings are not ours to print
        tokenizer = AutoTokenizer.from_pretrained(merged_dir, trust_remote_code=remote)
    name, text = _heldout_text(spec)
    ids = tokenizer(text, return_tensors="pt").input_ids[0][:HELDOUT_TOKENS]
    prompts = SMOKE_PROMPTS if spec.eval.prompts is None else spec.eval.prompts
    steps = 4 + len(prompts)

    yield report.log(f"loading the base with the adapter on {plan.device}")
    yield report.progress(0, steps, "checks", "base + adapter: probe logits, perplexity")
    with held_stderr():
        side = _base_side(base_dir, adapter_dir, merged_dir, plan, tokenizer, ids, remote)
    release_memory()
    if side.reference.adapter_effect < 1e-4:
        yield report.log(
            "the adapter changes no logits on the probe prompts: was it trained?", "warning"
        )
    ratio = side.adapter_perplexity / side.base_perplexity
    if ratio > spec.eval.max_perplexity_ratio:
        raise WorkError(
            f"the adapter makes the base much worse on held-out text: perplexity "
            f"{side.base_perplexity:.2f} → {side.adapter_perplexity:.2f} (×{ratio:.2f}, "
            f"limit ×{spec.eval.max_perplexity_ratio}); a sign of a wrong base or a broken run",
            hint="check base against the model the adapter was trained on",
        )

    from release.evaluate.sanity import chat_smoke, merge_equivalence, perplexity

    yield report.log(f"loading the merged model on {plan.device}")
    yield report.progress(2, steps, "checks", "merge equivalence")
    with held_stderr():
        merged = load_model(merged_dir, plan, trust_remote_code=remote)
    equivalence_facts = _equivalence_facts(
        spec, merge_equivalence(merged, tokenizer, side.reference)
    )
    yield report.progress(3, steps, "checks", "perplexity: merged")
    merged_perplexity = perplexity(merged, ids)
    perplexity_facts = PerplexityFacts(
        text=name,
        tokens=int(ids.numel()),
        base=round(side.base_perplexity, 4),
        adapter=round(side.adapter_perplexity, 4),
        merged=round(merged_perplexity, 4),
        ratio=round(ratio, 4),
        max_ratio=spec.eval.max_perplexity_ratio,
        passed=True,
    )

    smoke = []
    for index, prompt in enumerate(prompts):
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
    reference = None
    if keep_reference is not None:
        yield report.progress(steps, steps, "checks", "the merged model's reference")
        with held_stderr():
            reference = keep_reference.write(merged, tokenizer, plan.dtype, plan.device)
    yield report.progress(steps, steps, "checks")
    return EvaluateFacts(
        device=plan.device,
        equivalence=equivalence_facts,
        perplexity=perplexity_facts,
        smoke=smoke,
        reference=reference,
    )


def _base_side(
    base_dir: Path,
    adapter_dir: Path,
    merged_dir: Path,
    plan: LoadPlan,
    tokenizer,
    ids: torch.Tensor,
    remote: bool,
) -> _BaseSide:
    """Load base + adapter, take what the checks need of it, and let it go on return."""
    import torch
    from peft import PeftModel

    from release.evaluate.sanity import PROBE_PROMPTS, perplexity, probe_reference

    base = load_model(base_dir, plan, trust_remote_code=remote)
    with_adapter = PeftModel.from_pretrained(base, adapter_dir).eval()
    with with_adapter.disable_adapter():
        base_perplexity = perplexity(with_adapter, ids)
    adapter_perplexity = perplexity(with_adapter, ids)
    stored = getattr(torch, checkpoint_dtype(merged_dir))
    reference = probe_reference(with_adapter, tokenizer, PROBE_PROMPTS, stored)  # merges it
    return _BaseSide(reference, base_perplexity, adapter_perplexity)


def _equivalence_facts(spec: ReleaseSpec, equivalence) -> EquivalenceFacts:
    """The equivalence's facts, or the one-line error when the merge is not base + adapter."""
    equivalent = (
        equivalence.top1_agreement >= spec.eval.min_top1_agreement
        and equivalence.relative_error <= spec.eval.max_merge_error
    )
    if not equivalent:
        raise WorkError(
            f"the merged model is not base + adapter: top-1 agreement "
            f"{equivalence.top1_agreement:.1%} (min {spec.eval.min_top1_agreement:.0%}), mean "
            f"logit error {equivalence.relative_error:.0%} of the adapter's effect (max "
            f"{spec.eval.max_merge_error:.0%})",
            hint="rerun with --force merge; if it persists, report it",
        )
    return EquivalenceFacts(
        **{key: round(value, 6) for key, value in asdict(equivalence).items()},
        relative_error=round(equivalence.relative_error, 6),
        min_top1_agreement=spec.eval.min_top1_agreement,
        max_relative_error=spec.eval.max_merge_error,
        passed=True,
    )
