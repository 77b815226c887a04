"""What the sanity eval will hold at its peak, from the headers alone (the preflight).

One model is resident at a time (``release.evaluate.checks``), and a freed model's
memory goes back to the system before the next loads (``loading.steady_heap``), so the
peak is the larger of the two models' own peaks, over what stays the whole time:

- loading: the weights in the dtype ``release.evaluate.loading`` picks and, when that is
  not the checkpoint's dtype, the tensor being converted (read, not mapped: the largest
  one's checkpoint bytes); a checkpoint in the plan's dtype is used in place from its
  mapping, so its pages are the weights;
- running: the weights plus one perplexity window's logits (in the model's dtype, their
  float32 copy, the loss's log-softmax) and what forward passes keep (``FORWARD_SCRATCH``);
- base + adapter holds the adapter (float32); the merged model, the probe logits kept
  from base + adapter.

On the CPU float32 comes first; a bf16 checkpoint runs in bf16 only when float32 would
not fit (``choose_plan``). On an accelerator the weights go to the GPUs as accelerate
loads them, so RAM holds one checkpoint file at a time besides the logits (an estimate
not measured on a GPU machine yet).

Measured (growth of the process's peak RSS over the eval): SmolLM2
(tests/test_evaluate_memory.py) float32 702 MiB against 719 MiB estimated (+2.4%), bf16
460-472 MiB against 487 MiB (+3.2% to +5.9%); bench/eval.py's 1.1 GB model float32
2373 MiB against 2414 MiB (+1.7%), bf16 1204 MiB against 1302 MiB (+8.2%).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from release.checkpoint.config import read_config, text_config
from release.checkpoint.safetensors import (
    checkpoint_files,
    list_checkpoint,
    list_tensors,
    parameter_counts,
)
from release.core.units import human
from release.evaluate.loading import LoadPlan, checkpoint_dtype, plan_loading
from release.merge import lora
from release.preflight import Needs
from release.reference.heldout import CHUNK_TOKENS

PROBE_POSITIONS = 96
"""An upper bound on the tokens of the probe prompts (``sanity.PROBE_PROMPTS``): their
logits are kept, in float32, while the merged model loads."""
WINDOW_TOKENS = CHUNK_TOKENS
"""Tokens whose logits one forward pass holds: a held-out chunk
(``release.reference.heldout``), which the perplexity and the reference read at once."""
MiB = 2**20
RESIDENT = 60 * MiB
"""What the eval holds from start to end besides the models: the tokenizer, the held-out
ids, what base + adapter leaves behind (59 MiB on SmolLM2's float32 eval: the peak less
the merged model's load and the probe logits)."""
FORWARD_SCRATCH = 32 * MiB
"""What forward passes keep beyond weights and logits (the math libraries' scratch,
PEFT's wrappers): 31 MiB on SmolLM2's bf16 eval (the peak less weights, logits and
``RESIDENT``)."""


def evaluate_needs(
    base_dir: Path, merged_dir: Path, adapter_dir: Path | None, plan: LoadPlan
) -> Needs:
    """The RAM the sanity eval holds at its peak, run as ``plan`` says (``adapter_dir``
    None: a merge recipe's release, whose LoRA inputs are not counted)."""
    weights = [] if adapter_dir is None else list_tensors(adapter_dir / lora.WEIGHTS_NAME)
    adapter = sum(4 * info.numel for info in weights)
    vocab = int(text_config(read_config(base_dir)).get("vocab_size") or 0)
    # a chunk's logits in float32 and the loss's log-softmax beside them; the model's own
    # bf16 logits are gone by then (SmolLM2, 512 tokens: 7.3 bytes a logit measured in
    # float32, 6.9 in bf16)
    working = 8 * WINDOW_TOKENS * vocab
    working += FORWARD_SCRATCH
    kept = 4 * PROBE_POSITIONS * vocab
    if plan.gpus:
        largest = max(path.stat().st_size for path in checkpoint_files(base_dir))
        peak = largest + adapter + working + kept
    else:
        peak = max(
            _model_peak(base_dir, plan, working) + adapter,
            _model_peak(merged_dir, plan, working) + kept,
        )
    return Needs(
        "nothing",
        0,
        RESIDENT + peak,
        hint="or skip the sanity eval with eval.enabled: false (it is what proves the merge)",
    )


def _model_peak(model_dir: Path, plan: LoadPlan, working: int) -> int:
    """One model's peak on the CPU: loading it, or running it, whichever is larger."""
    parameters, _ = parameter_counts(model_dir)
    weights = parameters * plan.bytes_per_parameter
    loading = weights
    if checkpoint_dtype(model_dir) != plan.dtype:
        loading += max(info.nbytes for info in list_checkpoint(model_dir).values())
    return max(loading, weights + working)


def choose_plan(
    base_dir: Path, merged_dir: Path, adapter_dir: Path | None, gpus: int, available: int
) -> tuple[LoadPlan, Needs]:
    """``plan_loading``'s plan, or on the CPU the checkpoint's 16-bit dtype when float32
    would not fit in ``available`` bytes (float32 comes first: its logits are further
    from rounding; the 16-bit dtype holds half the weights and the same float32 logits).
    A refusal in the smaller dtype names float32's figure too."""
    plan = plan_loading(base_dir, gpus)
    needs = evaluate_needs(base_dir, merged_dir, adapter_dir, plan)
    stored = checkpoint_dtype(base_dir)
    if needs.memory_bytes <= available or plan.gpus or stored == plan.dtype:
        return plan, needs
    smaller = LoadPlan(stored, 0)
    fallback = evaluate_needs(base_dir, merged_dir, adapter_dir, smaller)
    figure = human(needs.memory_bytes, "bytes")
    hint = f"that is in {stored}, float32 needs about {figure}; {fallback.hint}"
    return smaller, replace(fallback, hint=hint)
