"""What a merge will write and hold at its peak, from the headers alone (the preflight).

The output is every tensor at the merge dtype, laid out by the merge's own shard plan,
plus the small files it copies; the peak is the largest tensor's float32 working copies
(read, merged, delta, cast: about three) plus the two largest adapter tensors, or, for
an initialization that moves the base (PiSSA, OLoRA), the float32 copies of its residual.

A merge recipe's peak is its methods' (``recipe_peak``): each step holds, of the block
it is given, the copies its method holds per input and besides (``Method.held``),
beside the results of the named steps before it; the block is the largest tensor
whole when a method looks across whole tensors (ties, dare, della, slerp), else a block
of rows (``recipe_stream.READ_BYTES``). A LoRA input's factors (rank x width) are small
beside these and not counted.
"""

from __future__ import annotations

from pathlib import Path

from release.checkpoint.safetensors import OutTensor, list_checkpoint, list_tensors, plan_shards
from release.merge import initialization, lora
from release.merge.writer import COPIED_FILES, output_dtype
from release.preflight import Needs
from release.spec.recipe import MergeRecipe

MERGE_FP32_COPIES = 3
"""The largest tensor's float32 copies at a merge's peak: weight, delta, the cast."""
_SAFETENSORS_HEADER_PER_TENSOR = 160
"""Bytes of a safetensors header entry (name, dtype, shape, offsets), generously."""


UNCHANGED_COPIES = 2
"""A tensor no input of a recipe changes, cast to the output dtype: its float32 copy and
the cast."""
MASKED_COPIES = 3
"""A step with a delta_mask: the mask's block, and the masked delta's two temporaries."""


def recipe_peak(recipe: MergeRecipe, largest: int) -> int:
    """What a recipe's merge holds at its peak, for a largest tensor of ``largest``
    float32 bytes."""
    from release.merge.methods import METHODS
    from release.merge.recipe_stream import READ_BYTES

    whole = any(METHODS[step.merge_method].whole for step in recipe.steps)
    block = largest if whole else min(largest, READ_BYTES)
    copies = []
    for number, step in enumerate(recipe.steps):
        kept = sum(1 for earlier in recipe.steps[:number] if earlier.name)
        per_input, besides = METHODS[step.merge_method].held
        masked = MASKED_COPIES if step.delta_mask is not None else 0
        copies.append(kept + per_input * len(step.models) + besides + masked)
    return max(UNCHANGED_COPIES * largest, block * max(copies))


def merge_needs(
    base_dir: Path,
    adapter_dir: Path | None,
    dtype: str,
    shard_size: int,
    recipe: MergeRecipe | None = None,
) -> Needs:
    """The merged folder's bytes (its shard plan, the copied files) and the merge's peak:
    of the adapter in ``adapter_dir``, or of ``recipe``."""
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
    working = MERGE_FP32_COPIES * largest if recipe is None else recipe_peak(recipe, largest)
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
