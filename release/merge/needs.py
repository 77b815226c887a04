"""What a merge will write and hold at its peak, from the headers alone (the preflight).

The output is every tensor at the merge dtype, laid out by the merge's own shard plan,
plus the small files it copies; the peak is the largest tensor's float32 working copies
(read, merged, delta, cast: about three) plus the two largest adapter tensors, or, for
an initialization that moves the base (PiSSA, OLoRA), the float32 copies of its residual.
"""

from __future__ import annotations

from pathlib import Path

from release.checkpoint.safetensors import OutTensor, list_checkpoint, list_tensors, plan_shards
from release.merge import initialization, lora
from release.merge.writer import COPIED_FILES, output_dtype
from release.preflight import Needs

MERGE_FP32_COPIES = 3
"""The largest tensor's float32 copies at a merge's peak: weight, delta, the cast."""
_SAFETENSORS_HEADER_PER_TENSOR = 160
"""Bytes of a safetensors header entry (name, dtype, shape, offsets), generously."""


def merge_needs(base_dir: Path, adapter_dir: Path | None, dtype: str, shard_size: int) -> Needs:
    """The merged folder's bytes (its shard plan, the copied files) and the merge's peak
    (``adapter_dir`` None: a merge recipe's, its inputs not counted)."""
    folders = [base_dir] if adapter_dir is None else [base_dir, adapter_dir]
    base = list_checkpoint(base_dir)
    plan = [OutTensor(name, output_dtype(info, dtype), info.shape) for name, info in base.items()]
    shards = plan_shards(plan, shard_size)
    headers = sum(8 + _SAFETENSORS_HEADER_PER_TENSOR * len(shard) for shard in shards)
    index = 64 * len(plan) if len(shards) > 1 else 0
    copied = sum(
        max(
            (folder / name).stat().st_size if (folder / name).is_file() else 0 for folder in folders
        )
        for name in COPIED_FILES
    )
    side = sum(p.stat().st_size for p in [base_dir / "config.json", *base_dir.glob("*.py")])
    weights = [] if adapter_dir is None else list_tensors(adapter_dir / lora.WEIGHTS_NAME)
    adapter = sorted((4 * info.numel for info in weights), reverse=True)
    largest = max((4 * info.numel for info in base.values()), default=0)
    working = MERGE_FP32_COPIES * largest
    if adapter_dir is not None:
        _, settings = lora.read_adapter_config(adapter_dir)
        if initialization.moves_base(settings.init_lora_weights):
            working = initialization.FLOAT32_COPIES * largest
    return Needs(
        what="the merged model",
        output_bytes=sum(t.nbytes for t in plan) + headers + index + copied + side,
        memory_bytes=working + sum(adapter[:2]),
        hint="a smaller merge.shard_size does not help (the shards add up to the same)",
    )
