"""What the sanity eval will hold at its peak, from the headers alone (the preflight)."""

from __future__ import annotations

from pathlib import Path

from release.checkpoint.safetensors import list_tensors, parameter_counts
from release.merge import lora
from release.preflight import Needs


def evaluate_needs(
    base_dir: Path, merged_dir: Path, adapter_dir: Path, *, on_accelerator: bool = False
) -> Needs:
    """The sanity eval holds the base (with the adapter) and the merged model in float32;
    on an accelerator each goes to it once loaded, so RAM holds one at a time."""
    adapter = sum(4 * info.numel for info in list_tensors(adapter_dir / lora.WEIGHTS_NAME))
    base, _ = parameter_counts(base_dir)
    merged, _ = parameter_counts(merged_dir)
    in_memory = max(base, merged) if on_accelerator else base + merged
    return Needs(
        "nothing",
        0,
        in_memory * 4 + adapter,
        hint="or skip the sanity eval with eval.enabled: false (it is what proves the merge)",
    )
