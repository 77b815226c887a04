"""What the sanity eval will hold at its peak, from the headers alone (the preflight).

One model is resident at a time (``release.evaluate.checks``): the peak is the larger of
base + adapter and the merged model, in the dtype ``release.evaluate.loading`` picks, plus
what outlives a model (the probe logits kept from base + adapter) and the working set of
one perplexity window (its logits in the model's dtype, their float32 copy and the loss's
log-softmax). On the CPU float32 comes first; a bf16 checkpoint runs in bf16 only when
float32 would not fit (``choose_plan``). On an accelerator the weights go to the GPUs
as accelerate loads them, so RAM holds one checkpoint file at a time besides the logits
(an estimate not measured on a GPU machine yet).
"""

from __future__ import annotations

from pathlib import Path

from release.checkpoint.config import read_config, text_config
from release.checkpoint.safetensors import checkpoint_files, list_tensors, parameter_counts
from release.evaluate.loading import LoadPlan, checkpoint_dtype, plan_loading
from release.merge import lora
from release.preflight import Needs

PROBE_POSITIONS = 96
"""An upper bound on the tokens of the probe prompts (``sanity.PROBE_PROMPTS``): their
logits are kept, in float32, while the merged model loads."""
WINDOW_TOKENS = 256
"""``sanity.PERPLEXITY_WINDOW``: tokens whose logits one forward pass holds."""
RUNTIME_OVERHEAD = 1.15
"""Allocator slack and what the model classes add beyond their weights (rotary tables,
generation caches): the peak RSS of SmolLM2's eval, in bf16 and in float32, over the
sum of the terms above (both about 1.09), plus a margin."""


def evaluate_needs(base_dir: Path, merged_dir: Path, adapter_dir: Path, plan: LoadPlan) -> Needs:
    """The RAM the sanity eval holds at its peak, run as ``plan`` says."""
    adapter = sum(4 * info.numel for info in list_tensors(adapter_dir / lora.WEIGHTS_NAME))
    vocab = int(text_config(read_config(base_dir)).get("vocab_size") or 0)
    logits = (plan.bytes_per_parameter + 4 + 4) * WINDOW_TOKENS * vocab
    kept = 4 * PROBE_POSITIONS * vocab
    if plan.gpus:
        largest = max(path.stat().st_size for path in checkpoint_files(base_dir))
        weights = largest + adapter
    else:
        weights = max(_resident(base_dir, plan) + adapter, _resident(merged_dir, plan))
    return Needs(
        "nothing",
        0,
        round((weights + logits) * RUNTIME_OVERHEAD) + kept,
        hint="or skip the sanity eval with eval.enabled: false (it is what proves the merge)",
    )


def _resident(model_dir: Path, plan: LoadPlan) -> int:
    """A model's RAM once loaded on the CPU: its weights in the plan's dtype and, when
    that is not the stored dtype, the checkpoint's pages that the conversion read (mapped
    files count in RSS until the mapping goes). A checkpoint already in the plan's dtype
    is used in place from its mapping."""
    parameters, _ = parameter_counts(model_dir)
    weights = parameters * plan.bytes_per_parameter
    if checkpoint_dtype(model_dir) == plan.dtype:
        return weights
    return weights + sum(path.stat().st_size for path in checkpoint_files(model_dir))


def choose_plan(
    base_dir: Path, merged_dir: Path, adapter_dir: Path, gpus: int, available: int
) -> tuple[LoadPlan, Needs]:
    """``plan_loading``'s plan, or on the CPU the checkpoint's 16-bit dtype when float32
    would not fit in ``available`` bytes but that does (bf16 rounding uses more of the
    equivalence limit, measured at 0.15 of 0.25 on SmolLM2, so float32 comes first)."""
    plan = plan_loading(base_dir, gpus)
    needs = evaluate_needs(base_dir, merged_dir, adapter_dir, plan)
    stored = checkpoint_dtype(base_dir)
    if needs.memory_bytes <= available or plan.gpus or stored == plan.dtype:
        return plan, needs
    smaller = LoadPlan(stored, 0)
    return smaller, evaluate_needs(base_dir, merged_dir, adapter_dir, smaller)
